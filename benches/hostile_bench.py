#!/usr/bin/env python3
"""Run `canhgac scan` and `rg -j1` on the files of hostile_gen.py and print one table.

Called by benches/hostile.sh (which installs ripgrep, builds canhgac and generates the files);
see benches/README.md. Python 3 standard library only.

For every kind: `canhgac scan --type T FILE` (the binary measured, and BASE_BIN too when given:
an older build, for before/after figures from one run on one machine), then the reference,
`rg -j1 -c -f PATTERNS FILE`, where PATTERNS are `canhgac rules patterns --type T` (those rg
accepts; rg 13 rejects escapes such as \\" that canhgac accepts, and gets them without the
backslash, as compare.sh does). Each command runs RUNS times; the fastest wall time counts, peak
RSS is the highest. Exits 0 whatever the numbers are.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time


def run_one(cmd, timeout, ok):
    """Runs cmd once: (wall seconds, cpu seconds, max RSS KiB, stderr) or None on timeout."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = t0 + timeout
    err = b""
    # wait4 gives this child's own rusage (ru_maxrss in KiB on Linux).
    os.set_blocking(proc.stderr.fileno(), False)
    while True:
        try:
            chunk = proc.stderr.read()
            if chunk:
                err += chunk
        except (BlockingIOError, TypeError):
            pass
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            return None
        time.sleep(0.005)
    wall = time.monotonic() - t0
    rest = proc.stderr.read()
    if rest:
        err += rest
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        sys.exit(f"hostile_bench.py: {' '.join(cmd)} exited with {code}: "
                 f"{err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, err.decode(errors="replace")


def best_of(cmd, runs, timeout, ok=(0,)):
    best, rss = None, 0
    for _ in range(runs):
        r = run_one(cmd, timeout, ok)
        if r is None:
            return None
        rss = max(rss, r[2])
        if best is None or r[0] < best[0]:
            best = r
    return best[0], best[1], rss, best[3]


def rg_form(p):
    """The pattern without backslashes before punctuation that is no regex metacharacter (rg 13)."""
    meta = set("\\.+*?()|[]{}^$#&-~<>")
    out, i = [], 0
    while i < len(p):
        if p[i] == "\\" and i + 1 < len(p):
            c = p[i + 1]
            out.append(c if (c.isascii() and not c.isalnum() and not c.isspace() and c not in meta)
                       else p[i:i + 2])
            i += 2
        else:
            out.append(p[i])
            i += 1
    return "".join(out)


def rg_accepts(path):
    r = subprocess.run(["rg", "-q", "-f", path, "/dev/null"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return r.returncode in (0, 1)


def patterns_for(binary, typ, out_dir):
    """A file of the type's patterns that rg accepts; (path, kept, total)."""
    text = subprocess.run([binary, "rules", "patterns", "--type", typ], check=True,
                          capture_output=True, text=True).stdout
    pats = [p for p in text.split("\n") if p]
    path = os.path.join(out_dir, f"patterns.{typ}")
    with open(path, "w") as f:
        f.write("\n".join(pats) + "\n")
    if rg_accepts(path):
        return path, len(pats), len(pats)
    kept = []
    one = os.path.join(out_dir, "one.pat")
    for p in pats:
        for form in (p, rg_form(p)):
            with open(one, "w") as f:
                f.write(form + "\n")
            if rg_accepts(one):
                kept.append(form)
                break
    with open(path, "w") as f:
        f.write("\n".join(kept) + "\n")
    return path, len(kept), len(pats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--base-bin", default="")
    ap.add_argument("--dir", required=True, help="where hostile_gen.py wrote the files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--kinds", default="")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    manifest = json.load(open(os.path.join(args.dir, "manifest.json")))
    kinds = [k for k in (args.kinds.split(",") if args.kinds else manifest) if k in manifest]
    version = lambda b: subprocess.run([b, "--version"], capture_output=True, text=True).stdout.strip()
    binaries = [("canhgac", args.bin)]
    if args.base_bin:
        binaries.append(("canhgac BASE", args.base_bin))
    pats = {}
    rows = []
    for kind in kinds:
        info = manifest[kind]
        path = os.path.join(args.dir, kind + ".log")
        typ, nbytes, nlines = info["type"], info["bytes"], info["lines"]
        with open(path, "rb") as f:  # page cache warm for every tool alike
            while f.read(1 << 20):
                pass
        for label, b in binaries:
            print(f"hostile_bench.py: {kind}: {label}", file=sys.stderr)
            r = best_of([b, "scan", "--type", typ, path], args.runs, args.timeout)
            note = ""
            if r is not None:
                m = re.search(r"(\d+) events, (\d+) incidents", r[3])
                note = f"{m.group(1)} events, {m.group(2)} incidents" if m else ""
            rows.append((kind, label, nbytes, nlines, r, note))
        if typ not in pats:
            pats[typ] = patterns_for(args.bin, typ, args.out)
        pfile, kept, total = pats[typ]
        print(f"hostile_bench.py: {kind}: rg -j1", file=sys.stderr)
        r = best_of(["rg", "-j1", "-c", "-f", pfile, path], args.runs, args.timeout, ok=(0, 1))
        rows.append((kind, "rg -j1 -c -f", nbytes, nlines, r, f"{kept} of {total} {typ} patterns"))

    with open(os.path.join(args.out, "hostile.json"), "w") as f:
        json.dump([{"kind": k, "tool": t, "bytes": b, "lines": l,
                    "seconds": r and r[0], "cpu_seconds": r and r[1], "peak_rss_kib": r and r[2],
                    "note": n} for k, t, b, l, r, n in rows], f, indent=1)

    print()
    print("== canhgac hostile-input benchmark")
    print(f"canhgac:  {version(args.bin)} ({args.bin})")
    if args.base_bin:
        print(f"BASE:     {version(args.base_bin)} ({args.base_bin})")
    print(f"ripgrep:  {subprocess.run(['rg', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine:  {cpu}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {platform.release()}")
    print(f"runs:     best of {args.runs} (wall), peak RSS the highest; page cache warm")
    print()
    hdr = ("kind", "tool", "bytes", "lines", "seconds", "MB/s", "lines/s", "CPU s", "peak RSS MB", "x rg")
    fmt = "{:<10} {:<14} {:>12} {:>10} {:>8} {:>8} {:>10} {:>7} {:>11} {:>6}  {}"
    print(fmt.format(*hdr, "notes"))
    print(fmt.format(*["-" * len(h) for h in hdr], "-----"))
    ref = {k: r for k, t, _, _, r, _ in rows if t.startswith("rg") and r}
    for kind, tool, b, l, r, note in rows:
        if r is None:
            print(fmt.format(kind, tool, f"{b:,}", f"{l:,}", "timeout", "-", "-", "-", "-", "-", note))
            continue
        wall, cpu_s, rss = r[0], r[1], r[2]
        x = "" if tool.startswith("rg") or kind not in ref else f"{ref[kind][0] / wall:.2f}"
        print(fmt.format(kind, tool, f"{b:,}", f"{l:,}", f"{wall:.3f}", f"{b / 1e6 / wall:.1f}",
                         f"{l / wall:,.0f}", f"{cpu_s:.2f}", f"{rss / 1024:.1f}", x, note))
    print()
    print("x rg: canhgac's throughput over rg -j1's on the same bytes (> 1: canhgac is faster).")
    print(f"raw figures: {os.path.join(args.out, 'hostile.json')}")


if __name__ == "__main__":
    main()
