#!/usr/bin/env python3
"""CPU time of `canhgac scan` builds side by side, and of `rg -j1` on the same files.

    benches/cpu_time.py [--runs N] [--corpus DIR] BINARY...

Runs every binary, and rg -j1 with the full pattern list, on each bench corpus file and on all
three at once, alternating them run after run, and prints the minimum and median CPU time
(user + system, from wait4) and the minimum wall time of each. On a shared machine wall time
mostly measures the other jobs; CPU time measures the work, and alternating spreads what noise
is left over every binary alike. Run benches/compare.sh once first: it makes the corpus.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = [("auth.log", "syslog"), ("access.log", "apache"), ("error.log", "apache-error")]


def run(cmd):
    """(CPU seconds, wall seconds) of one run of cmd, output discarded."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.dup2(null, 1)
            os.dup2(null, 2)
            try:
                os.execvp(cmd[0], cmd)
            finally:
                os._exit(127)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
    finally:
        os.close(null)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        sys.exit(f"cpu_time.py: {' '.join(cmd)} failed")
    return usage.ru_utime + usage.ru_stime, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--corpus", default=os.path.join(ROOT, "target/bench/corpus"))
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    paths = [os.path.join(args.corpus, name) for name, _ in FILES]
    for p in paths:
        if not os.path.isfile(p):
            sys.exit(f"cpu_time.py: {p} not found; run benches/compare.sh first")
    # The pattern list compare.sh gave rg (with its fixes for older rg), else our own.
    pattern_file = os.path.join(os.path.dirname(args.corpus), "results", "patterns.txt")
    if not os.path.isfile(pattern_file):
        patterns = subprocess.run(
            [args.binaries[0], "rules", "patterns"], check=True, capture_output=True, text=True
        ).stdout
        pattern_file = os.path.join(os.path.dirname(args.corpus), "patterns.cpu_time")
        with open(pattern_file, "w") as f:
            f.write("".join(p + "\n" for p in patterns.splitlines() if p))
    cases = [(name, [path], ["--type", kind]) for (name, kind), path in zip(FILES, paths)]
    cases.append(("all", paths, []))
    for p in paths:  # warm the page cache
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass
    results = {}
    for _ in range(args.runs):
        for name, files, type_args in cases:
            for b in args.binaries + ["rg"]:
                if b == "rg":
                    cmd = ["rg", "-j1", "-c", "-f", pattern_file] + files
                else:
                    cmd = [b, "scan"] + type_args + files
                results.setdefault((name, b), []).append(run(cmd))
    print(f"{'file':<11} {'binary':<36} {'cpu min':>8} {'cpu med':>8} {'wall min':>8}")
    for name, _, _ in cases:
        for b in args.binaries + ["rg -j1"]:
            r = results[(name, b.split()[0])]
            cpu = [c for c, _ in r]
            print(f"{name:<11} {b:<36} {min(cpu):8.3f} {statistics.median(cpu):8.3f} "
                  f"{min(w for _, w in r):8.3f}")


if __name__ == "__main__":
    main()
