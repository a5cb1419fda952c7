#!/usr/bin/env python3
"""Build a large benchmark corpus for canhgac by repeating the real logs in ../shared/corpus.

Writes three files into OUT:

  auth.log    openssh_2k.log + linux_syslog_2k.log   (BSD syslog, `Dec 10 06:55:46`)
  access.log  apache_access_10k.log                  (combined log format, `[17/May/2015:10:05:03 +0000]`)
  error.log   apache_error_2k.log                    (Apache error log, `[Sun Dec 04 04:47:44 2005]`)

Every source is repeated R times; R is the smallest number of repetitions that makes the three
files together at least --mb MB (1 MB = 10^6 bytes, the unit of every MB in these benchmarks), so each file's share of the bytes is the
share its sources have in ../shared/corpus (access.log dominates).

Repetition k (0-based) of a source:
  * times: the source's first day is moved to START + k days (START = 2025-12-10); every line
    keeps its time of day and its distance in days from the source's first day. Each file keeps
    its own time format byte for byte; weekdays of the Apache error log are recomputed; syslog
    days stay space-padded (`Jul  1`).
  * addresses: in every IPv4 address the last octet o (1..254) becomes ((o - 1 + k) mod 254) + 1
    (and the third octet moves by k // 254), so each repetition brings a new set of sources but
    keeps which lines share an address.
Each output file is the time-ordered merge of its repetitions (a stable merge: a source's own
line order is kept), so the files read like one busy host's logs rather than the same day
pasted 70 times. The loghub samples have CRLF line ends; the corpus uses LF, as Linux logs do.
Each file's modification time is set just after its last line, so canhgac's syslog year
inference (the year that puts a line at or before the file's mtime) gives consecutive years.

Python 3 standard library only. A corpus.json manifest next to the files lets a later run with
the same parameters and sources reuse them (pass --force to rebuild).
"""

import argparse
import datetime as dt
import hashlib
import heapq
import json
import os
import re
import sys
import time

VERSION = 2  # bump when the output for the same inputs changes
START = dt.date(2025, 12, 10)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
MONTH_NUM = {m: i + 1 for i, m in enumerate(MONTHS)}
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

# output file -> (source files, kind)
LAYOUT = [
    ("auth.log", ["openssh_2k.log", "linux_syslog_2k.log"], "syslog"),
    ("access.log", ["apache_access_10k.log"], "clf"),
    ("error.log", ["apache_error_2k.log"], "apache-error"),
]

RE_SYSLOG = re.compile(r"^([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d)(.*)$", re.S)
RE_CLF = re.compile(r"^(.*?\[)(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d)( [+-]\d{4}\].*)$", re.S)
RE_AERR = re.compile(r"^\[[A-Z][a-z]{2} ([A-Z][a-z]{2}) (\d\d) (\d\d):(\d\d):(\d\d) (\d{4})\](.*)$", re.S)
RE_IPV4 = re.compile(r"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.])")


def esc(s):
    return s.replace("{", "{{").replace("}", "}}")


def template(text, first=1):
    """Split text around IPv4 addresses: (format string with {first}, {first+1}.. for the
    addresses, their octets)."""
    parts, ips, pos = [], [], 0
    for m in RE_IPV4.finditer(text):
        octs = tuple(int(g) for g in m.groups())
        if max(octs) > 255:
            continue
        parts.append(esc(text[pos:m.start()]))
        ips.append(octs)
        parts.append("{%d}" % (first + len(ips) - 1))
        pos = m.end()
    parts.append(esc(text[pos:]))
    return "".join(parts), ips


class Line:
    __slots__ = ("day", "tod", "fmt", "ips", "static_len")

    def __init__(self, day, tod, fmt, ips, static_len):
        self.day = day          # days after the source's first day
        self.tod = tod          # seconds since midnight
        self.fmt = fmt          # str.format template: {0} = date/time stamp, {1}.. = addresses
        self.ips = ips          # tuples of octets
        self.static_len = static_len  # length of the rendered line minus its addresses


def parse_source(path, kind):
    """Parse one source log into Lines with day offsets relative to its first line."""
    with open(path, "rb") as f:
        raw = f.read().decode("latin-1")  # byte-exact round trip
    lines = [l[:-1] if l.endswith("\r") else l for l in raw.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    out, first, year = [], None, 2001  # syslog has no year: count from a non-leap one
    prev_month = None
    for n, text in enumerate(lines, 1):
        if kind == "syslog":
            m = RE_SYSLOG.match(text)
            if not m:
                raise SystemExit(f"{path}:{n}: not a syslog line: {text[:80]!r}")
            mon, day, hh, mi, ss, rest = m.groups()
            month = MONTH_NUM[mon]
            if prev_month is not None and month < prev_month - 6:
                year += 1  # Dec -> Jan
            prev_month = month
            date = dt.date(year, month, int(day))
            stamp_len = 15  # "Mmm dd HH:MM:SS"
            fmt_rest, ips = template(rest)
            fmt = "{0}" + fmt_rest
        elif kind == "clf":
            m = RE_CLF.match(text)
            if not m:
                raise SystemExit(f"{path}:{n}: not a combined-log line: {text[:80]!r}")
            head, dd, mon, yyyy, hh, mi, ss, tail = m.groups()
            date = dt.date(int(yyyy), MONTH_NUM[mon], int(dd))
            stamp_len = 20  # "dd/Mon/YYYY:HH:MM:SS"
            fh, ips_h = template(head)
            ft, ips_t = template(tail, 1 + len(ips_h))
            fmt, ips = fh + "{0}" + ft, ips_h + ips_t
        else:  # apache-error
            m = RE_AERR.match(text)
            if not m:
                raise SystemExit(f"{path}:{n}: not an Apache error-log line: {text[:80]!r}")
            mon, dd, hh, mi, ss, yyyy, rest = m.groups()
            date = dt.date(int(yyyy), MONTH_NUM[mon], int(dd))
            stamp_len = 26  # "[Www Mmm dd HH:MM:SS YYYY]"
            fr, ips = template(rest)
            fmt = "{0}" + fr
        if first is None:
            first = date
        tod = int(hh) * 3600 + int(mi) * 60 + int(ss)
        static = len(fmt.format("x" * stamp_len, *[""] * len(ips)))
        out.append(Line((date - first).days, tod, fmt, ips, static))
    return out


def stamp(kind, date, tod):
    hh, rem = divmod(tod, 3600)
    mi, ss = divmod(rem, 60)
    if kind == "syslog":
        return "%s %2d %02d:%02d:%02d" % (MONTHS[date.month - 1], date.day, hh, mi, ss)
    if kind == "clf":
        return "%02d/%s/%04d:%02d:%02d:%02d" % (date.day, MONTHS[date.month - 1], date.year, hh, mi, ss)
    return "[%s %s %02d %02d:%02d:%02d %04d]" % (
        WEEKDAYS[date.weekday()], MONTHS[date.month - 1], date.day, hh, mi, ss, date.year)


class IpMap:
    """Per-repetition address rewriting, cached."""

    def __init__(self, k):
        self.k, self.cache = k, {}

    def __call__(self, octs):
        s = self.cache.get(octs)
        if s is None:
            a, b, c, d = octs
            if self.k and 1 <= d <= 254:
                d = (d - 1 + self.k) % 254 + 1
                c = (c + self.k // 254) % 256
            s = self.cache[octs] = "%d.%d.%d.%d" % (a, b, c, d)
        return s


def rep_bytes(src_lines, ipmap):
    return sum(l.static_len + sum(len(ipmap(ip)) for ip in l.ips) + 1 for l in src_lines)


def stream(src_lines, kind, k, sid, ipmap):
    """Rendered lines of repetition k of one source, as (sort key, stream id, seq, text)."""
    base = (START - dt.date(2000, 1, 1)).days + k
    cache = {}
    for seq, l in enumerate(src_lines):
        day = l.day
        tod = l.tod
        st = cache.get((day, tod))
        if st is None:
            st = cache[(day, tod)] = stamp(kind, START + dt.timedelta(days=day + k), tod)
        yield ((base + day) * 86400 + tod, sid, seq, l.fmt.format(st, *[ipmap(ip) for ip in l.ips]) + "\n")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, help="directory with the real logs (../shared/corpus)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--mb", type=float, default=float(os.environ.get("CORPUS_MB", 200)),
                    help="minimum total size in MB (10^6 bytes) (default: $CORPUS_MB or 200)")
    ap.add_argument("--force", action="store_true", help="rebuild even if a matching corpus exists")
    args = ap.parse_args()

    target = int(args.mb * 1e6)
    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, "corpus.json")
    sources = {s: sha256(os.path.join(args.src, s)) for _, srcs, _ in LAYOUT for s in srcs}

    if not args.force and os.path.exists(manifest_path):
        try:
            with open(manifest_path) as f:
                old = json.load(f)
            ok = (old.get("version") == VERSION and old.get("target_bytes") == target
                  and old.get("sources") == sources
                  and all(os.path.getsize(os.path.join(args.out, name)) == info["bytes"]
                          for name, info in old["files"].items()))
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if ok:
            print(f"make_corpus: reusing {args.out} ({old['total_bytes']} bytes, {old['reps']} repetitions)",
                  file=sys.stderr)
            return

    t0 = time.time()
    parsed = {}
    for _, srcs, kind in LAYOUT:
        for s in srcs:
            parsed[s] = (parse_source(os.path.join(args.src, s), kind), kind)

    # Smallest number of repetitions reaching the target (exact: stamps have fixed widths).
    ipmaps, total, reps = [], 0, 0
    while total < target:
        im = IpMap(reps)
        ipmaps.append(im)
        total += sum(rep_bytes(lines, im) for lines, _ in parsed.values())
        reps += 1

    files = {}
    for name, srcs, kind in LAYOUT:
        path = os.path.join(args.out, name)
        gens = []
        for k in range(reps):
            for i, s in enumerate(srcs):
                gens.append(stream(parsed[s][0], kind, k, k * len(srcs) + i, ipmaps[k]))
        nbytes = nlines = 0
        last_key = 0
        with open(path + ".tmp", "w", encoding="latin-1", newline="") as f:
            buf = []
            for key, _, _, text in heapq.merge(*gens):
                buf.append(text)
                nbytes += len(text)
                last_key = max(last_key, key)
                if len(buf) >= 4096:
                    nlines += len(buf)
                    f.write("".join(buf))
                    buf.clear()
            nlines += len(buf)
            f.write("".join(buf))
        os.replace(path + ".tmp", path)
        # mtime just after the last line, as if the log had just been written (read as UTC)
        epoch = (dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
                 + dt.timedelta(seconds=last_key + 3600)).timestamp()
        os.utime(path, (epoch, epoch))
        files[name] = {"bytes": nbytes, "lines": nlines, "sources": srcs,
                       "last_time": dt.datetime.fromtimestamp(epoch - 3600, dt.timezone.utc).isoformat()}

    manifest = {
        "version": VERSION, "target_bytes": target, "reps": reps, "start": START.isoformat(),
        "total_bytes": sum(v["bytes"] for v in files.values()),
        "total_lines": sum(v["lines"] for v in files.values()),
        "sources": sources, "files": files,
    }
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    print(f"make_corpus: wrote {manifest['total_bytes']} bytes, {manifest['total_lines']} lines "
          f"({reps} repetitions) to {args.out} in {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
