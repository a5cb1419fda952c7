#!/usr/bin/env python3
"""canhgac against CrowdSec's own scenario tests: of the sources CrowdSec's scenarios flag in
the hub's test logs, how many does canhgac flag, and what else does it flag. See README.md here.

The CrowdSec hub (github.com/crowdsecurity/hub) keeps, per scenario, a directory under `.tests/`
with a log file, the parsers and scenarios that read it (`config.yaml`) and the assertions its
replay must satisfy (`scenario.assert`): how many alerts (`len(results) == N`) and which sources
each names (`Sources["203.0.113.5"]`, `"203.0.113.5" in results[0].Overflow.GetSources()`). Those
are CrowdSec's results on those lines by construction, so they are the reference here: a source
CrowdSec flags that canhgac does not is a miss.

Every test with a scenario assertion is fed, as a file, to `canhgac scan --format json --tz UTC`
(built-in rules, or `--rules DIR` instead), which recognises the file's type from its first lines
as the daemon does. A source is an incident's `src_ip` field, else its key, when an address.

- `hit`: CrowdSec's sources canhgac flags (any category).
- `extra`: sources canhgac flags that CrowdSec's tested scenarios do not. Not false positives by
  themselves (a test exercises one scenario; CrowdSec's other scenarios may flag them too), so
  listed to read, not counted as errors. In the tests that assert no alert at all
  (`len(results) == 0`: whitelists, false-positive checks), every canhgac source is counted as a
  false flag.
- Sources that are not addresses (ranges, user names) are counted apart.

A test whose file canhgac cannot read at all (no line with a stamp it knows: Windows event XML,
some JSON) shows scan's error. The summary gives every test, and the tests CrowdSec reads as
syslog, nginx or apache2 (the services both tools are built around).
"""

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys

from score import norm_ip, source_of  # the sibling script: addresses read as it reads them

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
HUB_URL = "https://github.com/crowdsecurity/hub"

LEN = re.compile(r"len\(results\)\s*==\s*(\d+)")
SOURCE = re.compile(r'Sources\["([^"]+)"\]|"([^"]+)" in results\[\d+\]\.Overflow\.GetSources\(\)')


def field(config, key):
    m = re.search(r"^%s:\s*(\S+)" % re.escape(key), config, re.M)
    return m.group(1).strip("'\"") if m else None


def scenarios(config):
    m = re.search(r"^scenarios:\n((?:\s*-.*\n|\s*#.*\n)*)", config, re.M)
    if not m:
        return []
    names = (l.strip()[1:].strip().strip("'\"") for l in m.group(1).splitlines() if l.strip().startswith("-"))
    return [n for n in names if n]


def load_tests(hub):
    """[(name, log path, crowdsec log_type, scenarios, alerts or None, {ip}, {non-ip source})]"""
    base = os.path.join(hub, ".tests")
    tests = []
    for name in sorted(os.listdir(base)):
        d = os.path.join(base, name)
        assert_path, config_path = os.path.join(d, "scenario.assert"), os.path.join(d, "config.yaml")
        if not (os.path.isfile(assert_path) and os.path.isfile(config_path)):
            continue
        text = open(assert_path, encoding="utf-8", errors="replace").read()
        config = open(config_path, encoding="utf-8", errors="replace").read()
        m = LEN.search(text)
        alerts = int(m.group(1)) if m else None
        ips, others = set(), set()
        for a, b in SOURCE.findall(text):
            s = a or b
            (ips if norm_ip(s) else others).add(norm_ip(s) or s)
        if (alerts is None and not ips and not others) or not scenarios(config):
            continue  # a parser test: no scenario outcome to compare
        log = field(config, "log_file")
        if not log or not os.path.isfile(os.path.join(d, log)):
            continue
        tests.append((name, os.path.join(d, log), field(config, "log_type") or "-", scenarios(config),
                      alerts, ips, others))
    return tests


def run_canhgac(binary, rules, path):
    """({source: set(rule)}, error text or None)"""
    source = ["--no-default-rules", "--rules", rules] if rules else []
    cmd = [binary, "scan", "--format", "json", "--tz", "UTC"] + source + [path]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, TZ="UTC"))
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        return {}, err.strip().splitlines()[0][:120] if err.strip() else "exit %d" % p.returncode
    flags = {}
    for inc in json.loads(p.stdout or b"[]"):
        src = source_of(inc, allow_hosts=False)
        if src:
            flags.setdefault(src, set()).add(inc["rule"])
    return flags, None


def ensure_hub(path):
    if os.path.isdir(os.path.join(path, ".tests")):
        return path
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    print("crowdsec_tests.py: cloning %s into %s" % (HUB_URL, path), file=sys.stderr)
    subprocess.run(["git", "clone", "-q", "--depth", "1", HUB_URL, path], check=True)
    return path


def default_bin():
    for b in ("target/release/canhgac", "target/debug/canhgac"):
        if os.path.isfile(os.path.join(ROOT, b)):
            return os.path.join(ROOT, b)
    sys.exit("crowdsec_tests.py: no canhgac binary; build one or pass --bin")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="canhgac binary (default: target/release, else target/debug)")
    ap.add_argument("--rules", help="rule directory read instead of the built-in rules")
    ap.add_argument("--hub", default=os.path.join(ROOT, "target", "bench", "crowdsec-hub"),
                    help="a checkout of the CrowdSec hub (cloned there when absent)")
    ap.add_argument("--test", action="append", help="only this test directory (repeatable)")
    ap.add_argument("--list", choices=("missed", "extra"), action="append",
                    help="print the tests' missed / extra sources with the rules that fired")
    ap.add_argument("--json", help="write every test's result to this file")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin) if args.bin else default_bin()
    tests = load_tests(ensure_hub(args.hub))
    if args.test:
        tests = [t for t in tests if t[0] in args.test]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = list(pool.map(lambda t: run_canhgac(binary, args.rules, t[1]), tests))

    rows, out = [], []
    for (name, path, ltype, scen, alerts, ips, others), (flags, err) in zip(tests, runs):
        found = set(flags)
        hit, missed, extra = ips & found, ips - found, found - ips
        negative = alerts == 0 and not ips
        rows.append(dict(test=name, log_type=ltype, scenarios=scen, alerts=alerts, expected=sorted(ips),
                         not_ip=sorted(others), hit=sorted(hit), missed=sorted(missed), extra=sorted(extra),
                         negative=negative, error=err,
                         rules={s: sorted(r) for s, r in flags.items()}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)

    if args.list:
        for r in rows:
            for kind in args.list:
                for s in r[kind]:
                    print("%-32s %-7s %-18s %s" % (r["test"], kind, s, ",".join(r["rules"].get(s, [])) or "-"))
        return

    print("CrowdSec hub scenario tests (%s) vs canhgac (%s%s)\n" % (args.hub, binary,
          ", rules " + args.rules if args.rules else ", built-in rules"))
    print("%-34s %-18s %6s %5s %6s %6s  %s" % ("test", "crowdsec log_type", "expect", "hit", "extra", "other", "note"))
    for r in rows:
        note = "error: " + r["error"] if r["error"] else ("negative test" if r["negative"] else "")
        print("%-34s %-18s %6d %5d %6d %6d  %s" % (r["test"][:34], r["log_type"][:18], len(r["expected"]),
              len(r["hit"]), len(r["extra"]), len(r["not_ip"]), note))

    def total(sel, label):
        rs = [r for r in rows if sel(r)]
        exp = sum(len(r["expected"]) for r in rs)
        hit = sum(len(r["hit"]) for r in rs)
        tests_hit = sum(1 for r in rs if r["expected"] and len(r["hit"]) == len(r["expected"]))
        tests_pos = sum(1 for r in rs if r["expected"])
        neg = [r for r in rs if r["negative"]]
        neg_flag = sum(len(r["extra"]) for r in neg)
        extra = sum(len(r["extra"]) for r in rs if not r["negative"])
        print("%-34s %5d tests  sources %4d/%4d (%5.1f%%)  tests fully found %3d/%3d  "
              "negative tests %d, sources flagged there %d  extra %d"
              % (label, len(rs), hit, exp, 100.0 * hit / exp if exp else 0.0, tests_hit, tests_pos,
                 len(neg), neg_flag, extra))

    print()
    total(lambda r: True, "every test")
    total(lambda r: r["log_type"] in ("syslog", "nginx", "apache2"), "log_type syslog/nginx/apache2")


if __name__ == "__main__":
    main()
