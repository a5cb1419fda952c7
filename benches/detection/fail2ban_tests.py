#!/usr/bin/env python3
"""canhgac's built-in rules against fail2ban's own annotated filter tests. See README.md here.

  fail2ban_tests.py [--bin PATH] [--logs DIR] [--covered] [--filter NAME ...]
                    [--list missed|false|wrong ...] [--json FILE] [--keep DIR]

fail2ban ships, for each filter, a test log (Debian: /usr/lib/python3/dist-packages/fail2ban/
tests/files/logs/<filter>) in which a line `# failJSON: {...}` annotates the next line:
`"match": true` (the filter must find a failure there, `"host"` being the address it must blame)
or `"match": false`. Every line is fed, annotations stripped and line numbers kept, to
`canhgac scan --events --type TYPE` (built-in rules, TZ=UTC), which prints one JSON object per
line that some rule matched (`line`, `rule`, `fields` with `src_ip` / `src_host`). Counted:

  must      lines annotated "match": true;  hit  = lines with at least one event (any rule)
  not       lines annotated "match": false; flag = lines with at least one event
  wrong     matched must lines where an event blames a host (src_ip, else src_host) other than
            the annotation's; none = matched must lines whose events carry no host at all.
            Hosts are compared normalised: IPv4-mapped IPv6 as IPv4, IPv6 compressed, names
            lower-case.

Modes. `# filterOptions: [{...}, ...]` lines run the lines after them through each listed
option set (e.g. `[{}, {"mode": "aggressive"}]`), `# fileOptions:` adds options to all of them,
a `test.condition` drops a set, and an annotation's `"constraint"` (e.g. "opts.get('mode') ==
'aggressive'", "name == 'sshd'") drops the sets it is false for; a line left with no set is not
tested at all, as in fail2ban's samplestestcase.py, which this parser follows. A line is in
"normal mode" when some set it is tested in has no mode or one other than aggressive, ddos or
extra (postfix's auth, rbl, errors, nginx-http-auth's fallback are the default jails' modes).
  normal mode: must = "match": true lines tested in a normal set; not = "match": false lines
               tested in a normal set (a line fail2ban catches only in aggressive mode is a
               false flag here).
  all modes:   must = every "match": true line; not = "match": false lines whose text is not
               a "match": true line elsewhere in the file (sshd's `Connection closed by ...
               [preauth]` is "false" in normal mode and "true", on its copy, in aggressive).
`addFILE` includes are not followed (each file is counted once, under its own name);
sshd-journal is read as the sshd filter reads it (its conditions say name == 'sshd'). Lines of
`logtype: journal` carry no time stamp; they get one, as canhgac's journal input writes them
(`2005-01-01T00:00:00+00:00 host prog[pid]: message`, plus the set's `test.prefix-line`).

Input types (FILTER_TYPES below): each line gets the canhgac input type its shape is, among
those its filter's log may hold, by the same shape tests as `canhgac scan` without --type
(src/input/sniff.rs, ported in shape()); a line of none of them gets the filter's first type.
Formats canhgac has no input type for (audit.log of selinux-ssh, gitlab's, grafana's,
mongodb's and monit's own files, ...) are fed as syslog: the shipped rules for those services
are syslog rules. Files not in FILTER_TYPES: the sniffed type, else syslog. Access-log lines
are `apache` (the access-log rules read nginx and apache alike).

Headline: over the filters of COVERED (services canhgac covers by design), then over every
file. Exit status 0 whatever the figures (a measurement); 2 when canhgac cannot run.
Python 3 standard library only.
"""

import argparse
import collections
import concurrent.futures
import glob
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import score  # the sibling script: which input types a binary reads

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

LOG_DIRS = [
    "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs",
    *sorted(glob.glob("/usr/lib/python3*/*-packages/fail2ban/tests/files/logs")),
    *sorted(glob.glob("/usr/local/lib/python3*/*-packages/fail2ban/tests/files/logs")),
]

# Services canhgac covers by design: the headline counts these filters' logs. `bsd` is a
# directory of unannotated FreeBSD syslog samples that fail2ban's tests do not read: nothing
# to count (reported as skipped).
COVERED = (
    "sshd", "dropbear", "selinux-ssh", "pam-generic",
    "vsftpd", "proftpd", "pure-ftpd", "wuftpd",
    "postfix", "dovecot", "courier-auth", "courier-smtp", "sendmail-auth", "sendmail-reject",
    "exim",
    "mysqld-auth", "mongodb-auth",
    "roundcube-auth", "drupal-auth", "phpmyadmin-syslog", "monit", "gitlab", "grafana",
    "apache-auth", "apache-badbots", "apache-botsearch", "apache-modsecurity", "apache-noscript",
    "apache-overflows", "apache-shellshock",
    "nginx-http-auth", "nginx-limit-req", "nginx-botsearch", "nginx-bad-request",
    "php-url-fopen", "bsd", "suhosin",
)

TYPES = ("syslog", "nginx", "apache", "nginx-error", "apache-error", "clamav", "bind", "unbound",
         "vsftpd", "mysql", "roundcube", "asterisk")

# filter -> input types its test log holds; the first one is for lines of no recognised shape.
# Not listed: the sniffed type of each line, else syslog.
_APACHE_ERROR = ("apache-error", "syslog")      # httpd also logs its error log through syslog
FILTER_TYPES = {
    # syslog lines (own formats without a canhgac type fed as syslog, see above)
    **{f: ("syslog",) for f in (
        "sshd", "sshd-journal", "dropbear", "selinux-ssh", "pam-generic", "proftpd", "pure-ftpd",
        "wuftpd", "postfix", "dovecot", "courier-auth", "courier-smtp", "sendmail-auth",
        "sendmail-reject", "exim", "exim-spam", "drupal-auth", "phpmyadmin-syslog", "monit",
        "gitlab", "grafana", "mongodb-auth", "suhosin")},
    "vsftpd": ("syslog", "vsftpd"),             # via syslog, or vsftpd's own xferlog-less log
    "mysqld-auth": ("syslog", "mysql"),         # via syslog, or the MySQL/MariaDB error log
    "roundcube-auth": ("syslog", "roundcube"),  # via syslog, or Roundcube's logs/errors file
    "asterisk": ("syslog", "asterisk"),         # via syslog, or Asterisk's messages/full file
    # Apache error log
    **{f: _APACHE_ERROR for f in (
        "apache-auth", "apache-botsearch", "apache-modsecurity", "apache-noscript",
        "apache-overflows", "apache-shellshock", "apache-nohome")},
    # access log (combined format)
    **{f: ("apache",) for f in (
        "apache-badbots", "apache-fakegooglebot", "apache-pass", "php-url-fopen",
        "nginx-bad-request")},
    "nginx-botsearch": ("apache", "nginx-error"),  # access lines and error-log lines
    # nginx error log
    "nginx-http-auth": ("nginx-error",),
    "nginx-limit-req": ("nginx-error",),
}

# The name a file's conditions are evaluated with (fail2ban reads sshd-journal only through
# sshd's `addFILE`; its conditions say name == 'sshd').
NAME_OF = {"sshd-journal": "sshd"}
STRICT_MODES = {"aggressive", "ddos", "extra"}
JOURNAL_STAMP = "2005-01-01T00:00:00+00:00 "
ANNOTATION = re.compile(r"^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$")


# ---------------------------------------------------------------- line shapes (sniff.rs)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _digits(s):
    return s != "" and all("0" <= c <= "9" for c in s)


def _at(s, i, n):
    return s[i:i + n] if i + n <= len(s) else ""


def _month(s):
    return len(s) == 3 and s.lower() in _MONTHS


def _weekday(s):
    return len(s) == 3 and s.lower() in _DAYS


def _clock(s, i):
    t = _at(s, i, 8)
    return (len(t) == 8 and _digits(t[0:2]) and t[2] == ":" and _digits(t[3:5]) and t[5] == ":"
            and _digits(t[6:8]))


def _ctime(s, i):
    return (_weekday(_at(s, i, 3)) and _month(_at(s, i + 4, 3))
            and all(c.isdigit() or c == " " for c in _at(s, i + 8, 2)) and _clock(s, i + 11))


def _mysql(s):
    if _digits(_at(s, 0, 6)) and _at(s, 6, 1) == " " and _at(s, 9, 1) == ":" and " [" in s[:40]:
        return True
    if not (_digits(_at(s, 0, 4)) and _at(s, 4, 1) == "-" and _at(s, 7, 1) == "-"):
        return False
    two = _at(s, 10, 2)
    if two in ("T0", "T1", "T2"):
        clock_at = 11
    elif two == "  ":
        clock_at = 12
    elif len(two) == 2 and two[0] == " ":
        clock_at = 11
    else:
        return False
    if _at(s, clock_at + (1 if clock_at == 12 else 2), 1) != ":":
        return False
    after = s[clock_at:]
    space = after[:40].find(" ")
    if space < 0:
        return False
    rest = after[space + 1:]
    m = re.match(r"\d+", rest)
    return bool(m) and rest[m.end():].startswith(" [")


def _syslog(s):
    rest = s
    if rest.startswith("<"):
        close = rest[:6].find(">")
        if close < 0:
            return False
        rest = rest[close + 1:]
        if rest.startswith("1 "):
            rest = rest[2:]
    classic = _month(_at(rest, 0, 3)) and _at(rest, 3, 1) == " " and _clock(rest, 7)
    rfc3339 = (_digits(_at(rest, 0, 4)) and _at(rest, 4, 1) == "-" and _at(rest, 7, 1) == "-"
               and _at(rest, 10, 1) in ("T", " ") and _at(rest, 10, 1) != "" and _clock(rest, 11))
    return classic or rfc3339


def _asterisk(s):
    dated = (_digits(_at(s, 1, 4)) and _at(s, 5, 1) == "-" and _digits(_at(s, 6, 2))
             and _at(s, 8, 1) == "-" and _digits(_at(s, 9, 2)) and _at(s, 11, 1) == " "
             and _clock(s, 12))
    yearless = (_month(_at(s, 1, 3)) and _at(s, 4, 1) == " "
                and all(c.isdigit() or c == " " for c in _at(s, 5, 2)) and _at(s, 7, 1) == " "
                and _clock(s, 8))
    close = s[:40].find("]")
    if not s.startswith("[") or not (dated or yearless) or close < 0:
        return False
    m = re.match(r" ([A-Z]{4,})( ?\[)", s[close + 1:close + 17])
    return bool(m)


def _access(s):
    head = s[:300]
    open_ = head.find("[")
    if open_ < 0:
        return False
    st = _at(s, open_ + 1, 20)
    return (len(st) == 20 and _digits(st[0:2]) and st[2] == "/" and _month(st[3:6])
            and st[6] == "/" and _digits(st[7:11]) and st[11] == ":" and '] "' in s[open_:])


def shape(s):
    """The canhgac input type a line looks like (classify() in src/input/sniff.rs), or None."""
    if s.startswith("[") and _ctime(s, 1) and "] [" in s:
        return "apache-error"
    if (_digits(_at(s, 0, 4)) and _at(s, 4, 1) == "/" and _at(s, 7, 1) == "/" and _clock(s, 11)
            and _at(s, 19, 2) == " ["):
        return "nginx-error"
    if _ctime(s, 0) and " -> " in s:
        return "clamav"
    if ((_ctime(s, 0) and _at(s, 24, 6) == " [pid ")
            or (_weekday(_at(s, 0, 3)) and _month(_at(s, 4, 3)) and _at(s, 9, 1) == " "
                and _clock(s, 10) and _at(s, 23, 6) == " [pid ")):
        return "vsftpd"
    if _mysql(s):
        return "mysql"
    if (s.startswith("[") and _digits(_at(s, 1, 2)) and _at(s, 3, 1) == "-"
            and _month(_at(s, 4, 3)) and _at(s, 7, 1) == "-" and _clock(s, 13)):
        return "roundcube"
    if (_digits(_at(s, 0, 2)) and _at(s, 2, 1) == "-" and _month(_at(s, 3, 3))
            and _at(s, 6, 1) == "-" and _digits(_at(s, 7, 4)) and _clock(s, 12)):
        return "bind"
    close = s[:13].find("]")
    if s.startswith("[") and close > 1 and _digits(s[1:close]) and s[close:].startswith("] unbound["):
        return "unbound"
    if _access(s):
        return "apache"
    if _asterisk(s):
        return "asterisk"
    if _syslog(s):
        return "syslog"
    return None


def input_type(filt, text):
    allowed = FILTER_TYPES.get(filt)
    got = shape(text)
    if allowed is None:
        return got or "syslog"
    return got if got in allowed else allowed[0]


def known_types(binary):
    """The input types `binary` reads (score.py's reading of its `scan --help`), so that an older
    build is measured on the same lines: a line of a type it lacks is fed as the first type it has,
    else syslog."""
    return score.known_types(binary) or set(TYPES)


def fall_back(filt, itype, known):
    if itype in known:
        return itype
    return next((t for t in FILTER_TYPES.get(filt, ()) if t in known), "syslog")


# ---------------------------------------------------------------- fail2ban's test logs
def decode(b):
    return b.decode("utf-8", "surrogateescape")


def cond(expr, name, opts):
    # Expressions from fail2ban's own test files: `name == 'sshd'`, `opts.get('mode') ...`.
    return bool(eval(expr, {"__builtins__": {}}, {"name": name, "opts": opts}))  # noqa: S307


def mode_of(opts):
    return opts.get("mode") or "default"


def parse(path, filt):
    """Test cases of one file, as samplestestcase.py reads them: a list of dicts."""
    name = NAME_OF.get(filt, filt)
    with open(path, "rb") as f:
        raw = f.read().split(b"\n")
    cases = []
    common = {}
    sets = [{}]           # fail2ban's default when no filterOptions came yet
    ignore = False
    i = 0
    while i < len(raw):
        text = decode(raw[i]).rstrip("\r\n")
        m = ANNOTATION.match(text)
        if m:
            kind, data = m.group(1), json.loads(m.group(2))
            if kind == "fileOptions":
                common = data
                i += 1
                continue
            if kind == "filterOptions":
                sets = []
                for o in (data if isinstance(data, list) else [data]):
                    opts = dict(common, **o)
                    if opts.get("test.condition") and not cond(opts["test.condition"], name, opts):
                        continue
                    sets.append(opts)
                ignore = not sets
                i += 1
                continue
            if kind == "addFILE":
                i += 1
                continue
            annotation = data
            i += 1                           # the annotated line is the next one, whatever it is
            if i >= len(raw):
                break
            text = decode(raw[i]).rstrip("\r\n")
        elif ignore or text.startswith("#") or not text.strip():
            i += 1
            continue
        else:
            annotation = {}                  # an unannotated line must not match
        lineno = i + 1
        i += 1
        if ignore:
            continue
        c = annotation.get("constraint")
        tested = [o for o in sets if not c or cond(c, name, o)]
        if not tested:
            continue
        fed = text
        if all(o.get("logtype") == "journal" for o in tested):
            fed = JOURNAL_STAMP + tested[0].get("test.prefix-line", "") + text
        modes = sorted({mode_of(o) for o in tested})
        host = annotation.get("host", annotation.get("ip4", annotation.get("ip6")))
        cases.append({
            "filter": filt, "line": lineno, "text": text, "fed": fed,
            "match": bool(annotation.get("match", False)),
            "host": host if isinstance(host, str) else None,
            "desc": annotation.get("desc", ""),
            "modes": modes,
            "normal": any(m not in STRICT_MODES for m in modes),
            "type": input_type(filt, fed),
        })
    # all-modes must-not: a "false" line whose text is no "true" line of this file
    true_texts = {c["fed"] for c in cases if c["match"]}
    for c in cases:
        c["strict_not"] = not c["match"] and c["fed"] not in true_texts
    return cases


# ---------------------------------------------------------------- canhgac
def norm_host(h):
    if h is None:
        return None
    h = h.strip().strip("[]")
    try:
        a = ipaddress.ip_address(h)
    except ValueError:
        return h.lower().rstrip(".")
    if a.version == 6 and a.ipv4_mapped:
        a = a.ipv4_mapped
    return str(a)


def event_host(fields):
    return fields.get("src_ip") or fields.get("src_host")


def run_canhgac(binary, rules, workdir, filt, itype, cases):
    """Events of one file's lines of one input type: {line number: [event, ...]}. `rules`: a
    rule directory read instead of the built-in rules (None: the built-in ones)."""
    last = max(c["line"] for c in cases)
    lines = [""] * last
    for c in cases:
        lines[c["line"] - 1] = c["fed"]
    path = os.path.join(workdir, f"{filt}.{itype}.log")
    with open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    env = dict(os.environ, TZ="UTC")
    source = ["--no-default-rules", "--rules", rules] if rules else []
    p = subprocess.run([binary, "scan", "--events", "--tz", "UTC", *source, "--type", itype, path],
                       capture_output=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"canhgac scan --type {itype} {path} exited {p.returncode}:\n"
                           + decode(p.stderr))
    events = collections.defaultdict(list)
    for line in decode(p.stdout).splitlines():
        if line.startswith("{"):
            e = json.loads(line)
            events[e["line"]].append(e)
    return events


def judge(c, events):
    c["events"] = [{"rule": e["rule"], "host": event_host(e.get("fields", {}))} for e in events]
    c["flagged"] = bool(events)
    c["wrong"] = c["nohost"] = False
    if c["match"] and events and c["host"]:
        want = norm_host(c["host"])
        got = [norm_host(e["host"]) for e in c["events"] if e["host"]]
        if any(g != want for g in got):
            c["wrong"] = True
        elif not got:
            c["nohost"] = True


# ---------------------------------------------------------------- counting and printing
def count(cases, normal):
    k = collections.Counter()
    for c in cases:
        if normal and not c["normal"]:
            continue
        if c["match"]:
            k["must"] += 1
            k["hit"] += c["flagged"]
            k["wrong"] += c["wrong"]
            k["none"] += c["nohost"]
        elif (c["normal"] if normal else c["strict_not"]):
            k["not"] += 1
            k["flag"] += c["flagged"]
    return k


def pct(a, b):
    return f"{100.0 * a / b:5.1f}" if b else "    -"


def cols(k):
    return (f"{k['must']:5d} {k['hit']:5d} {pct(k['hit'], k['must'])} "
            f"{k['not']:4d} {k['flag']:4d} {pct(k['flag'], k['not'])}")


def table(by_filter, names, covered_only):
    print(f"{'':43}| normal mode                      | all modes                        | host")
    print(f"{'  filter':23}{'types':20}|  must   hit     %  not flag     % |  must   hit     %  not flag     % | wrong none")
    for f in names:
        if covered_only and f not in COVERED:
            continue
        cs = by_filter[f]
        n, a = count(cs, True), count(cs, False)
        types = "+".join(sorted({c["type"] for c in cs}, key=TYPES.index))
        mark = "*" if f in COVERED else " "
        print(f"{mark} {f:20.20} {types:19.19} | {cols(n)} | {cols(a)} | {a['wrong']:5d} {a['none']:4d}")


def headline(by_filter, names):
    groups = [(f"covered ({sum(f in COVERED for f in names)} filters)", [f for f in names if f in COVERED]),
              (f"every file ({len(names)})", names)]
    print(f"{'':31}must-match lines      must-not lines      host")
    print(f"{'':21}{'mode':8}  lines   hit      %   lines flag      %   wrong none")
    for label, fs in groups:
        cs = [c for f in fs for c in by_filter[f]]
        for mode, normal in (("normal", True), ("all", False)):
            k = count(cs, normal)
            print(f"{label:21}{mode:8}  {k['must']:5d} {k['hit']:5d}  {pct(k['hit'], k['must'])}"
                  f"   {k['not']:5d} {k['flag']:4d}  {pct(k['flag'], k['not'])}   {k['wrong']:5d} {k['none']:4d}")
            label = ""


def modes_tag(c):
    return ("modes " if c["normal"] else "not normal: ") + ",".join(c["modes"])


def listing(kind, by_filter, names):
    print(f"--- {kind}")
    for f in names:
        for c in by_filter[f]:
            where = f"{f}:{c['line']}"
            rules = ",".join(sorted({e["rule"] for e in c["events"]})) or "-"
            if kind == "missed" and c["match"] and not c["flagged"]:
                print(f"{where:24} [{modes_tag(c)}] host={c['host'] or '-'} type={c['type']}"
                      f"{'  (' + c['desc'] + ')' if c['desc'] else ''}\n    {c['text']}")
            elif kind == "false" and not c["match"] and c["flagged"] and (c["normal"] or c["strict_not"]):
                also = "" if c["strict_not"] else " (a 'true' line in another mode)"
                print(f"{where:24} [{modes_tag(c)}]{also} rules={rules}\n    {c['text']}")
            elif kind == "wrong" and (c["wrong"] or c["nohost"]):
                got = ",".join(sorted({f"{e['rule']}={e['host'] or '(none)'}" for e in c["events"]}))
                print(f"{where:24} [{modes_tag(c)}] want={c['host']} got {got}\n    {c['text']}")


# ---------------------------------------------------------------- main
def die(msg):
    print(f"fail2ban_tests: {msg}", file=sys.stderr)
    sys.exit(2)


def find_binary(arg):
    if arg:
        return arg
    for p in ("target/release/canhgac", "target/debug/canhgac"):
        p = os.path.join(ROOT, p)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def find_logs(arg):
    if arg:
        return arg if os.path.isdir(arg) else None
    for d in LOG_DIRS:
        if os.path.isdir(d):
            return d
    return None


def install_fail2ban():
    print("fail2ban's test logs not found: installing fail2ban with apt-get", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None or not shutil.which("apt-get"):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "fail2ban"]):
        if subprocess.run(sudo + cmd, env=env, stdout=sys.stderr).returncode != 0:
            return


def fail2ban_version(logs):
    path = os.path.join(logs, "..", "..", "..", "version.py")
    try:
        m = re.search(r'version\s*=\s*"([^"]+)"', open(path).read())
        return m.group(1) if m else "?"
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="canhgac binary (default: target/release, else target/debug)")
    ap.add_argument("--rules", help="rule directory to use instead of the built-in rules (a rule "
                    "change measured without rebuilding: --rules rules)")
    ap.add_argument("--logs", help="fail2ban's tests/files/logs directory")
    ap.add_argument("--covered", action="store_true", help="per-filter table and lists: COVERED only")
    ap.add_argument("--filter", action="append", default=[], help="only this filter (repeatable)")
    ap.add_argument("--list", action="append", default=[], choices=("missed", "false", "wrong"),
                    help="print the lines of this set instead of the tables (repeatable)")
    ap.add_argument("--json", help="write every test line with its result to this file")
    ap.add_argument("--keep", help="write the fed logs here (default: a temporary directory)")
    args = ap.parse_args()

    binary = find_binary(args.bin)
    if not binary:
        die("no canhgac binary (target/release or target/debug); build it or pass --bin")
    try:
        v = subprocess.run([binary, "--version"], capture_output=True, text=True)
    except OSError as e:
        die(f"cannot run {binary}: {e}")
    if v.returncode != 0:
        die(f"{binary} --version exited {v.returncode}: {v.stderr.strip()}")
    version = v.stdout.strip()

    logs = find_logs(args.logs)
    if not logs and not args.logs:
        install_fail2ban()
        logs = find_logs(None)
    if not logs:
        print("fail2ban_tests: SKIPPED: fail2ban's annotated test logs are not available "
              f"({args.logs or LOG_DIRS[0]}); install Debian's fail2ban package "
              "(apt-get install fail2ban, as root) or pass --logs DIR")
        return 0

    known = known_types(binary)
    names, skipped, by_filter = [], [], {}
    for entry in sorted(os.listdir(logs)):
        path = os.path.join(logs, entry)
        if args.filter and entry not in args.filter:
            continue
        if os.path.isdir(path):
            skipped.append(f"{entry}/ (a directory, no annotations)")
            continue
        cases = parse(path, entry)
        for c in cases:
            c["type"] = fall_back(entry, c["type"], known)
        if not cases:
            skipped.append(f"{entry} (no test lines of its own)")
            continue
        names.append(entry)
        by_filter[entry] = cases
    if not names:
        print("fail2ban_tests: no test files selected")
        return 0

    workdir = args.keep or tempfile.mkdtemp(prefix="canhgac-f2b-tests-")
    os.makedirs(workdir, exist_ok=True)
    jobs = []
    for f in names:
        per_type = collections.defaultdict(list)
        for c in by_filter[f]:
            per_type[c["type"]].append(c)
        jobs += [(f, t, cs) for t, cs in per_type.items()]
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            results = pool.map(lambda j: (j, run_canhgac(binary, args.rules, workdir, *j)), jobs)
            for (f, t, cs), events in results:
                for c in cs:
                    judge(c, events.get(c["line"], []))
    except (RuntimeError, OSError) as e:
        die(str(e))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    if args.json:
        with open(args.json, "w") as out:
            json.dump({"canhgac": version, "fail2ban": fail2ban_version(logs), "logs": logs,
                       "covered": list(COVERED), "filter_types": FILTER_TYPES,
                       "cases": [c for f in names for c in by_filter[f]]}, out, indent=1)

    shown = [f for f in names if not args.covered or f in COVERED]
    if args.list:
        for kind in args.list:
            listing(kind, by_filter, shown)
        return 0

    print(f"fail2ban {fail2ban_version(logs)} annotated filter tests ({logs})\n"
          f"vs {version} built-in rules ({binary}), any rule counts\n")
    table(by_filter, names, args.covered)
    if skipped:
        print("\nnot counted: " + "; ".join(skipped))
    print("\n* = COVERED (services canhgac covers by design). wrong/none: matched must-match lines "
          "(all modes) blaming\nanother host / no host. --list missed|false|wrong shows the lines.\n")
    headline(by_filter, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
