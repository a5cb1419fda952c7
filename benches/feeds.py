#!/usr/bin/env python3
"""IoC feed figures for canhgac, printed side by side with a reference from the same run.

1. Load time and peak RSS of a one-million-indicator feed of each kind (ip: addresses and CIDR
   ranges, IPv4 and IPv6; domain; url; hash: SHA-256), read by `canhgac check --config` (which
   reads every feed file whole, as the daemon does at start). The reference is the same command
   with an empty feed of that kind: the difference is what the feed costs. Peak RSS includes the
   raw file, held while it is parsed; the daemon keeps only the indicator set.
2. Pipeline throughput: `canhgac scan` over the bench corpus (benches/make_corpus.py: auth,
   access and error logs) and over a synthetic BIND query log, without feeds (the IoC rules are
   then inactive) and with all four million-indicator feeds loaded (`scan --config`). With feeds,
   every access-log line goes through web-ioc-client (captures and one address lookup) and every
   query line through dns-query-ioc-domain (captures and a suffix walk of its name).

Python 3 standard library only. Usage: benches/feeds.sh (builds the release binary first).
Environment: BENCH_DIR (default target/bench), CORPUS_MB (default 100), DNS_LINES (default
1000000), RUNS (default 3; the fastest scan counts), BIN (default target/release/canhgac).
"""

import os
import random
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/canhgac"))
BENCH = os.environ.get("BENCH_DIR", os.path.join(ROOT, "target/bench"))
FEEDS = os.path.join(BENCH, "feeds")
CORPUS = os.path.join(BENCH, "corpus")
CORPUS_MB = os.environ.get("CORPUS_MB", "100")
DNS_LINES = int(os.environ.get("DNS_LINES", "1000000"))
RUNS = int(os.environ.get("RUNS", "3"))
N = 1_000_000

KINDS = ["ip", "domain", "url", "hash"]
WORDS = ["login", "secure", "update", "account", "verify", "mail", "cdn", "api", "portal", "cloud",
         "bank", "pay", "office", "drive", "docs", "auth", "sso", "id", "web", "app"]
TLDS = ["com", "net", "org", "info", "xyz", "top", "vn", "com.vn", "ru", "cn"]


def feed_domain(i):
    return f"{WORDS[i % 20]}-{WORDS[(i // 20) % 20]}{i}.{TLDS[i % 10]}"


def feed_ip(rng, i):
    """The i-th entry of an ip feed: 70 % IPv4 addresses, 20 % IPv4 ranges, 10 % IPv6."""
    r = i % 10
    if r < 7:
        return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if r < 9:
        # Mostly /24s, as blocklists hold them; a few wide ranges.
        ln = rng.choice([20, 24, 24, 24, 28])
        return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0/{ln}"
    return f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(65536):x}"


def write_feeds(rng):
    os.makedirs(FEEDS, exist_ok=True)
    marker = os.path.join(FEEDS, f"done-v2-{N}")
    if os.path.exists(marker):
        return
    with open(os.path.join(FEEDS, "ip.txt"), "w") as f:
        f.write("# 1M addresses and ranges\n")
        for i in range(N):
            f.write(feed_ip(rng, i) + "\n")
    with open(os.path.join(FEEDS, "domain.txt"), "w") as f:
        for i in range(N):
            f.write(feed_domain(i) + "\n")
    with open(os.path.join(FEEDS, "url.txt"), "w") as f:
        for i in range(N):
            f.write(f"http://{feed_domain(i)}/{WORDS[i % 7]}/{rng.getrandbits(40):x}.php?id={i}\n")
    with open(os.path.join(FEEDS, "hash.txt"), "w") as f:
        for i in range(N):
            f.write(f"{rng.getrandbits(256):064x}\n")
    for k in KINDS:
        open(os.path.join(FEEDS, f"empty-{k}.txt"), "w").close()
        with open(os.path.join(FEEDS, f"{k}.txt")) as big, open(os.path.join(FEEDS, f"tiny-{k}.txt"), "w") as tiny:
            tiny.write(next(line for line in big if not line.startswith("#")))
    open(marker, "w").close()


def write_config(name, feeds):
    """A config whose [[feed]]s are `feeds` [(name, kind, file)]."""
    path = os.path.join(FEEDS, name)
    with open(path, "w") as f:
        f.write('agency = "bench"\nstate_dir = "state"\n\n[[input]]\nname = "x"\npath = "x.log"\ntype = "syslog"\n')
        for fname, kind, file in feeds:
            f.write(f'\n[[feed]]\nname = "{fname}"\npath = "{file}"\nkind = "{kind}"\n'
                    f'category = "malware"\nseverity = "high"\n')
    return path


def measure(cmd):
    """(wall seconds, stdout, stderr) of one run."""
    start = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.stdout, p.stderr
    wall = time.monotonic() - start
    if p.returncode != 0:
        sys.exit(f"feeds bench: {' '.join(cmd)} failed:\n{err.decode(errors='replace')}")
    return wall, out.decode(), err.decode()


def measure_rss(cmd):
    """(wall seconds, peak RSS MB) with os.wait4's rusage."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execv(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    if status != 0:
        sys.exit(f"feeds bench: {' '.join(cmd)} failed (status {status})")
    return wall, usage.ru_maxrss / 1024.0


def write_dns_log(rng):
    path = os.path.join(BENCH, f"query-{DNS_LINES}.log")
    if os.path.exists(path):
        return path
    benign = ["www.gov.vn", "mail.google.com", "update.microsoft.com", "vnexpress.net",
              "zalo.me", "facebook.com", "ocsp.digicert.com", "dichvucong.gov.vn"]
    with open(path, "w") as f:
        for i in range(DNS_LINES):
            h, m, s = (i // 36000) % 24, (i // 600) % 60, (i // 10) % 60
            client = f"10.20.{(i // 250) % 250}.{i % 250 + 1}"
            if i % 100 == 0:  # 1% of queries for a listed domain (or a subdomain of one)
                name = f"x{i}.{feed_domain(rng.randrange(N))}"
            else:
                name = benign[i % len(benign)] if i % 3 else f"{WORDS[i % 20]}{i % 997}.example.org"
            f.write(f"31-Oct-2020 {h:02}:{m:02}:{s:02}.{i % 1000:03} client @0x7f1b2c0a1b20 "
                    f"{client}#{40000 + i % 20000} ({name}): query: {name} IN A +E(0)K (10.20.0.53)\n")
    return path


def scan(args):
    """Best-of-RUNS scan: (seconds, MB/s, lines/s, events)."""
    best = None
    for _ in range(RUNS):
        _, _, err = measure([BIN, "scan", "--tz", "UTC", "--year", "2020"] + args)
        m = re.search(r"(\d+) lines, (\d+) bytes in ([0-9.]+) s \(([0-9.]+) MB/s, (\d+) lines/s\); (\d+) events",
                      err)
        if not m:
            sys.exit(f"feeds bench: unexpected scan summary: {err}")
        secs, mbs, lps, events = float(m[3]), float(m[4]), int(m[5]), int(m[6])
        if best is None or secs < best[0]:
            best = (secs, mbs, lps, events)
    return best


def main():
    if not os.path.exists(BIN):
        sys.exit(f"feeds bench: no binary at {BIN} (run benches/feeds.sh)")
    rng = random.Random(7)
    print(f"feeds bench: writing 1M-indicator feeds into {FEEDS} (reused between runs)", flush=True)
    write_feeds(rng)

    print("\n1. Load of a 1,000,000-indicator feed (`canhgac check --config`, best of 3)")
    print(f"{'kind':8} {'file MB':>8} {'indicators':>11} {'load s':>7} {'peak RSS MB':>12} "
          f"{'empty feed: s':>14} {'RSS MB':>7} {'feed costs: s':>14} {'RSS MB':>7}")
    for kind in KINDS:
        file = os.path.join(FEEDS, f"{kind}.txt")
        full = write_config(f"one-{kind}.toml", [("bench", kind, file)])
        empty = write_config(f"empty-{kind}.toml", [("bench", kind, os.path.join(FEEDS, f"empty-{kind}.txt"))])
        _, out, _ = measure([BIN, "check", "--config", full])
        count = re.search(r"ok: feed bench \(.*\): (\d+) indicators", out)
        runs = [measure_rss([BIN, "check", "--config", full]) for _ in range(3)]
        base = [measure_rss([BIN, "check", "--config", empty]) for _ in range(3)]
        t, rss = min(r[0] for r in runs), max(r[1] for r in runs)
        bt, brss = min(r[0] for r in base), max(r[1] for r in base)
        print(f"{kind:8} {os.path.getsize(file) / 1e6:8.1f} {int(count[1]) if count else -1:>11,} {t:7.2f} {rss:12.1f} "
              f"{bt:14.2f} {brss:7.1f} {t - bt:14.2f} {rss - brss:7.1f}", flush=True)

    print(f"\n2. Pipeline throughput, `canhgac scan` (1 thread, full default rules, best of {RUNS})")
    subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), "--src",
                    os.path.join(ROOT, "..", "shared", "corpus"), "--out", CORPUS, "--mb", CORPUS_MB],
                   check=True)
    corpus = [os.path.join(CORPUS, f) for f in ("auth.log", "access.log", "error.log")]
    dns = write_dns_log(rng)
    all_feeds = write_config("all.toml", [(f"bench-{k}", k, os.path.join(FEEDS, f"{k}.txt")) for k in KINDS])
    tiny_feeds = write_config("tiny.toml", [(f"bench-{k}", k, os.path.join(FEEDS, f"tiny-{k}.txt")) for k in KINDS])
    print("  none: no feeds (IoC rules inactive); 4 x 1: one indicator per kind (IoC rules active:")
    print("  their lines captured and looked up); 4 x 1M: a million per kind. 4 x 1M vs 4 x 1 is")
    print("  what the size of the feeds costs; 4 x 1 vs none what checking fields at all costs.")
    print(f"{'input':22} {'feeds':>9} {'seconds':>8} {'MB/s':>8} {'lines/s':>11} {'events':>9}")
    for label, files in [("bench corpus", corpus), ("BIND query log", [dns])]:
        without = scan(files)
        tiny = scan(["--config", tiny_feeds] + files)
        full = scan(["--config", all_feeds] + files)
        for name, r in [("none", without), ("4 x 1", tiny), ("4 x 1M", full)]:
            print(f"{label:22} {name:>9} {r[0]:8.2f} {r[1]:8.1f} {r[2]:>11,} {r[3]:>9,}")
        print(f"{label:22} {'ratios':>9}   4 x 1M / 4 x 1: {full[1] / tiny[1]:.2f}x   "
              f"4 x 1M / none: {full[1] / without[1]:.2f}x  (MB/s)", flush=True)


if __name__ == "__main__":
    main()
