#!/usr/bin/env python3
"""Web-root integrity: the cost of a baseline and of a re-scan, and the time from a change to its
incident in the store, for a generated web root (20,000 files by default).

    benches/integrity.py [--bin target/release/canhgac] [--files 20000] [--changes 20]

Side by side in the same run, references for the same files: `sha256sum` over every file (what
the first scan must at least do: read and hash everything) and `find -printf` of size and
times (what a re-scan must at least do: stat everything). canhgac's own figures come from its
log line `integrity: web root bench: scanned, N file(s) known, M read, in S s`, written after
each full scan (the first one hashes every file; the periodic re-scans, every 5 s here, only
stat them). Latency: a file is changed, then the store is polled (read-only, every 2 ms) until
an `integrity-deface` incident lists it; the figure includes the configured debounce (100 ms
here; 2 s by default), which is a choice, not a cost.

Python 3 standard library only. Exits 0 whatever the numbers are.
"""

import argparse
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_root(root, n, seed=7):
    rng = random.Random(seed)
    total = 0
    for i in range(n):
        d = os.path.join(root, f"section{i % 40}", f"page{(i // 40) % 25}")
        os.makedirs(d, exist_ok=True)
        ext = rng.choice(["html", "html", "php", "css", "js", "png", "jpg"])
        size = int(rng.lognormvariate(8.5, 1.0))  # median ~5 KB, a long tail
        size = min(size, 2 << 20)
        with open(os.path.join(d, f"f{i}.{ext}"), "wb") as f:
            f.write(rng.randbytes(size) if ext in ("png", "jpg") else (b"<p>x</p>\n" * (size // 9 + 1))[:size])
        total += size
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<h1>home</h1>\n")
    return total


def timed(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def drop_note():
    return "(page cache warm: every tool reads files just written or just read)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/canhgac")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--changes", type=int, default=20)
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        log("building release binary")
        subprocess.run(["cargo", "build", "--release", "--locked"], check=True)
    work = tempfile.mkdtemp(prefix="canhgac-integrity-bench-")
    root = os.path.join(work, "www")
    log(f"generating {args.files} files in {root}")
    total = make_root(root, args.files)
    files = args.files + 1
    # References, warm cache (a first pass warms it for everyone).
    timed(f"find {root} -type f -print0 | xargs -0 cat > /dev/null", shell=True)
    sha = min(timed(f"find {root} -type f -print0 | xargs -0 sha256sum", shell=True) for _ in range(3))
    stat = min(timed(["find", root, "-type", "f", "-printf", "%s %T@ %C@ %i\\n"]) for _ in range(3))

    with open(os.path.join(work, "canhgac.toml"), "w") as f:
        f.write(f"""agency = "bench"
time_zone = "UTC"
state_dir = "state"
[http]
listen = "127.0.0.1:0"
[integrity]
debounce = "100ms"
rescan_interval = "5s"
[[webroot]]
name = "bench"
path = "www"
""")
    daemon = subprocess.Popen([args.bin, "run", "--config", os.path.join(work, "canhgac.toml")],
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    scans = []
    cond = threading.Condition()
    pat = re.compile(r"web root bench: scanned, (\d+) file\(s\) known, (\d+) read, in ([0-9.]+)s")

    def reader():
        for line in daemon.stderr:
            m = pat.search(line)
            if m:
                with cond:
                    scans.append((int(m.group(1)), int(m.group(2)), float(m.group(3))))
                    cond.notify_all()

    threading.Thread(target=reader, daemon=True).start()

    def wait_scans(n, timeout=600):
        with cond:
            if not cond.wait_for(lambda: len(scans) >= n, timeout):
                raise SystemExit(f"no scan #{n} within {timeout}s")
            return scans[n - 1]

    try:
        first = wait_scans(1)
        rescans = [wait_scans(k) for k in range(2, 5)]
        db = os.path.join(work, "state", "canhgac.db")
        # Wait for the baseline to be committed.
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                if con.execute("SELECT COUNT(*) FROM integrity_roots").fetchone()[0] == 1:
                    break
            except sqlite3.Error:
                pass
            time.sleep(0.05)
        lat = []
        for i in range(args.changes):
            target = f"section{i % 40}/page0/changed{i}.html"
            path = os.path.join(root, target)
            t0 = time.time()
            with open(path, "w") as f:
                f.write(f"<p>change {i}</p>\n")
            while True:
                row = con.execute(
                    "SELECT created_us FROM incidents WHERE rule = 'integrity-deface' "
                    "AND json_extract(fields, '$.files') LIKE ?", (f"%{target}%",)).fetchone()
                if row:
                    lat.append(row[0] / 1e6 - t0)
                    break
                if time.time() - t0 > 60:
                    raise SystemExit(f"no incident for {target} within 60 s")
                time.sleep(0.002)
            time.sleep(0.3)  # its own burst
    finally:
        daemon.terminate()
        daemon.wait()
    rss = "-"
    print(f"web root: {files} files, {total / 1e6:.1f} MB, {drop_note()}")
    print(f"{'what':<58} {'seconds':>9}")
    print(f"{'canhgac first scan (baseline: read + SHA-256 of every file)':<58} {first[2]:>9.3f}   ({first[1]} files read)")
    print(f"{'  reference: find | xargs sha256sum (best of 3)':<58} {sha:>9.3f}")
    best = min(r[2] for r in rescans)
    print(f"{'canhgac re-scan (lstat each file, hash none that kept stat)':<58} {best:>9.3f}   (best of {len(rescans)}; files read: {max(r[1] for r in rescans)})")
    print(f"{'  reference: find -printf size/mtime/ctime/inode (best of 3)':<58} {stat:>9.3f}")
    lat.sort()
    print(f"change -> incident committed, debounce 100 ms, {len(lat)} changes: "
          f"median {statistics.median(lat) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
