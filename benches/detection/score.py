#!/usr/bin/env python3
"""Score canhgac and fail2ban on the labelled corpus written by gen_corpus.py, then run both on
the real logs and list the sources only one of them flags. See README.md in this directory.

  score.py --bin CANHGAC --corpus DIR [--real FILE ...] [--no-fail2ban] [--details FILE]

Per file and category, attacker-level: recall = attackers (label "attacker" of that category)
with >= 1 incident of that category / attackers; precision = flagged sources that are attackers
(of any category; "other" counts those of another one) / flagged sources, where sources labelled
"below" or "distributed" are left out of the denominator and reported on their own.

fail2ban: fail2ban-regex (Debian's filters) prints every failure with its host and time
(`-o row`); a jail is simulated on them: a host is banned once it has maxretry failures within
findtime (10 minutes; maxretry 5 unless jail.conf sets another for that jail). Each jail is
given the category of what it looks for. Python 3 standard library only.
"""

import argparse
import collections
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time

FINDTIME = 600

# kind -> mode -> [(jail, filter for fail2ban-regex, category, maxretry)]; maxretry as in
# Debian's jail.conf (default 5; apache-badbots 1). Jails whose filters read an error log
# (apache-auth, apache-noscript, apache-shellshock, nginx-http-auth, nginx-limit-req) have
# nothing to read in an access log; apache-fakegooglebot needs DNS and is left out.
WEB = [("apache-badbots", "apache-badbots", "recon", 1),
       ("nginx-botsearch", "nginx-botsearch", "recon", 5),
       ("nginx-bad-request", "nginx-bad-request", "recon", 5),
       ("php-url-fopen", "php-url-fopen", "web-attack", 5)]
JAILS = {
    "ssh": {"normal": [("sshd", "sshd[mode=normal]", "bruteforce", 5)],
            "aggressive": [("sshd", "sshd[mode=aggressive]", "bruteforce", 5)]},
    "web": {"normal": WEB, "aggressive": WEB},
    "ftp": {"normal": [("vsftpd", "vsftpd", "bruteforce", 5)],
            "aggressive": [("vsftpd", "vsftpd", "bruteforce", 5)]},
    "mail": {"normal": [("postfix", "postfix[mode=more]", "spam", 5),
                        ("postfix-sasl", "postfix[mode=auth]", "bruteforce", 5),
                        ("dovecot", "dovecot[mode=normal]", "bruteforce", 5)],
             "aggressive": [("postfix", "postfix[mode=aggressive]", "bruteforce", 5),
                            ("dovecot", "dovecot[mode=aggressive]", "bruteforce", 5)]},
    # fail2ban ships no filter for the kernel's packet log (its portsentry filter reads
    # portsentry's own history file): nothing to run.
    "fw": {"normal": [], "aggressive": []},
    "voip": {"normal": [("asterisk", "asterisk", "bruteforce", 5)],
             "aggressive": [("asterisk", "asterisk", "bruteforce", 5)]},
}
REAL_JAILS = {"normal": [("sshd", "sshd[mode=normal]", "bruteforce", 5)],
              "aggressive": [("sshd", "sshd[mode=aggressive]", "bruteforce", 5)]}
CANHGAC, F2B_N, F2B_A = "canhgac", "fail2ban normal", "fail2ban aggressive"
ROW = re.compile(r"^\['(?P<host>[^']*)',\s*(?P<t>[0-9.]+),")


def norm_ip(s):
    try:
        a = ipaddress.ip_address(str(s).strip().strip("[]"))
    except ValueError:
        return None
    if a.version == 6 and a.ipv4_mapped:
        a = a.ipv4_mapped
    return str(a)


def source_of(inc, allow_hosts):
    """The source address of an incident: its src_ip field, else its key, if an address
    (or, for the real logs, a host name PAM wrote in rhost=)."""
    fields = inc.get("fields") or {}
    for v in (fields.get("src_ip"), inc.get("key")):
        if v is not None and norm_ip(v):
            return norm_ip(v)
    v = fields.get("src_ip")
    if allow_hosts and v and re.fullmatch(r"[A-Za-z0-9._-]+", v):
        return v.lower()
    return None


def known_types(binary):
    """The input types `binary` reads, from its `scan --help`."""
    out = subprocess.run([binary, "scan", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout.decode()
    m = re.search(r"--type <TYPE>.*?\[possible values: ([^\]]*)\]", out, re.S)
    return set(re.split(r"[,\s]+", m.group(1).strip())) if m else set()


def run_canhgac(binary, path, ctype, allow_hosts=False):
    """{category: {source: set(rule ids)}}, incidents without a source address, seconds, summary."""
    cmd = [binary, "scan", "--format", "json", "--tz", "UTC"] + (["--type", ctype] if ctype else []) + [path]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, TZ="UTC"))
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("score.py: %s exited with %d:\n%s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    incidents = json.loads(p.stdout or b"[]")
    flags, nosrc = collections.defaultdict(lambda: collections.defaultdict(set)), 0
    for inc in incidents:
        src = source_of(inc, allow_hosts)
        if src is None:
            nosrc += 1
            continue
        flags[inc["category"]][src].add(inc["rule"])
    summary = [l for l in p.stderr.decode(errors="replace").splitlines() if l.startswith("canhgac: ")]
    return flags, nosrc, secs, (summary[-1] if summary else "")


_f2b_cache = {}


def run_f2b(path, flt, year):
    """[(host, time)] of every failure fail2ban-regex finds with filter `flt`, and seconds.
    Syslog stamps carry no year and fail2ban guesses one from today's date: with `year` set,
    every time is put back into that year (the corpus never crosses New Year)."""
    key = (path, flt)
    if key in _f2b_cache:
        return _f2b_cache[key]
    cmd = ["fail2ban-regex", "-r", "--timezone=UTC", "-o", "row", path, flt]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, TZ="UTC"))
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("score.py: %s exited with %d:\n%s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    rows = []
    for line in p.stdout.decode(errors="replace").splitlines():
        m = ROW.match(line)
        if not m:
            continue
        t = float(m.group("t"))
        if year:
            d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
            t = d.replace(year=year).timestamp()
        rows.append((m.group("host"), t))
    _f2b_cache[key] = (rows, secs)
    return rows, secs


def jail(rows, maxretry, findtime=FINDTIME):
    """{host: time of first ban}: maxretry failures within findtime."""
    by = collections.defaultdict(list)
    for h, t in rows:
        by[h].append(t)
    banned = {}
    for h, ts in by.items():
        ts.sort()
        for i in range(maxretry - 1, len(ts)):
            if ts[i] - ts[i - maxretry + 1] <= findtime:
                banned[h] = ts[i]
                break
    return banned


def run_f2b_jails(path, jails, year, allow_hosts=False):
    """{category: {source: set(jail names)}}, seconds, failures found per jail."""
    flags, secs, found = collections.defaultdict(lambda: collections.defaultdict(set)), 0.0, {}
    for name, flt, cat, maxretry in jails:
        rows, s = run_f2b(path, flt, year)
        secs += s
        found[name] = len(rows)
        for h in jail(rows, maxretry):
            src = norm_ip(h) or (h.lower() if allow_hosts else None)
            if src:
                flags[cat][src].add(name)
    return flags, secs, found


def pct(a, b):
    return "%5.1f%%" % (100.0 * a / b) if b else "    -"


def score(flags_cat, labels, cat):
    att = {ip for ip, v in labels.items() if v["label"] == "attacker" and v["category"] == cat}
    other = {ip for ip, v in labels.items() if v["label"] == "attacker" and v["category"] != cat}
    below = {ip for ip, v in labels.items() if v["label"] == "below"}
    dist = {ip for ip, v in labels.items() if v["label"] == "distributed"}
    fl = set(flags_cat)
    tp, oth = fl & att, fl & other
    fb, fd = fl & below, fl & dist
    fp = fl - tp - oth - fb - fd
    counted = len(tp) + len(oth) + len(fp)
    return dict(attackers=len(att), flagged=len(fl), tp=len(tp), other=len(oth), fp=len(fp),
                recall=len(tp) / len(att) if att else None,
                precision=(len(tp) + len(oth)) / counted if counted else None,
                below=(len(fb), len(below)), dist=(len(fd), len(dist)),
                fp_list=sorted(fp), miss_list=sorted(att - fl), below_list=sorted(fb), dist_list=sorted(fd))


def union(flags):
    u = collections.defaultdict(set)
    for cat, d in flags.items():
        for ip, why in d.items():
            u[ip] |= why
    return u


HDR = "%-16s %-20s %9s %7s %5s %5s %5s %7s %9s %7s %9s %8s"


def print_table(title, rows):
    print(title)
    print(HDR % ("file", "tool", "attackers", "flagged", "TP", "other", "FP", "recall", "precision",
                 "below", "distrib.", "seconds"))
    for fname, tool, s, secs in rows:
        print(HDR % (fname, tool, s["attackers"], s["flagged"], s["tp"], s["other"], s["fp"],
                     pct(s["tp"], s["attackers"]), pct(s["tp"] + s["other"], s["tp"] + s["other"] + s["fp"]),
                     "%d/%d" % s["below"], "%d/%d" % s["dist"], "%.2f" % secs if secs is not None else "-"))
    print()


def add_scores(a, b):
    if a is None:
        return dict(b)
    r = dict(a)
    for k in ("attackers", "flagged", "tp", "other", "fp"):
        r[k] = a[k] + b[k]
    r["below"] = (a["below"][0] + b["below"][0], a["below"][1] + b["below"][1])
    r["dist"] = (a["dist"][0] + b["dist"][0], a["dist"][1] + b["dist"][1])
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--corpus", required=True, help="directory written by gen_corpus.py")
    ap.add_argument("--real", nargs="*", default=[], help="real (unlabelled) syslog files")
    ap.add_argument("--no-fail2ban", action="store_true")
    ap.add_argument("--details", help="write false positives and misses here")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()

    manifest = json.load(open(os.path.join(a.corpus, "corpus.json")))
    labels = json.load(open(os.path.join(a.corpus, "labels.json")))
    year = manifest["year"]
    use_f2b = not a.no_fail2ban and shutil.which("fail2ban-regex")
    tools = [CANHGAC] + ([F2B_N, F2B_A] if use_f2b else [])

    ver = subprocess.run([a.bin, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode().strip()
    print("== canhgac detection benchmark")
    print("canhgac:   %s (%s)" % (ver, a.bin))
    if use_f2b:
        fv = subprocess.run(["fail2ban-regex", "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode().strip().splitlines()
        print("fail2ban:  %s, Debian's filters in /etc/fail2ban/filter.d; jail simulated: maxretry failures "
              "(5; apache-badbots 1) within findtime %d min" % (fv[0] if fv else "?", FINDTIME // 60))
    else:
        print("fail2ban:  not available: fail2ban columns skipped")
    print("corpus:    %s (seed %s, %s days from %s; auth.log's sshd logs as sshd-session from day %.2f)"
          % (a.corpus, manifest["seed"], manifest["days"], manifest["start"][:10], manifest["sshd_session_from_day"]))
    for fname, info in manifest["files"].items():
        print("  %-16s %7d lines  %s" % (fname, info["lines"], ", ".join("%s %d" % kv for kv in sorted(info["sources"].items()))))
    print()

    # ---- run the tools on every file
    results = {}  # fname -> tool -> (flags, seconds)
    notes = []
    known = known_types(a.bin)
    for fname, info in manifest["files"].items():
        if info["type"] not in known:
            # An older build measured beside a newer one: the files it cannot read are left out.
            print("%s: not scored: this build has no input type %s" % (fname, info["type"]))
            continue
        path = os.path.join(a.corpus, fname)
        flags, nosrc, secs, summ = run_canhgac(a.bin, path, info["type"])
        results[fname] = {CANHGAC: (flags, secs)}
        notes.append("canhgac %-10s %s%s" % (fname, summ.replace("canhgac: ", ""),
                                             "; %d incidents without a source address" % nosrc if nosrc else ""))
        if use_f2b:
            for tool, mode in ((F2B_N, "normal"), (F2B_A, "aggressive")):
                fl, s, found = run_f2b_jails(path, JAILS[info["kind"]][mode], year)
                results[fname][tool] = (fl, s)
                notes.append("%-19s %-10s failures found: %s" % (tool, fname, ", ".join("%s %d" % kv for kv in found.items())))

    # ---- per category
    cats = set()
    for fname in results:
        for v in labels[fname].values():
            if v["label"] == "attacker":
                cats.add(v["category"])
        for tool in tools:
            cats |= set(results[fname][tool][0])
    order = ["bruteforce", "web-attack", "recon", "dos"]
    cats = sorted(cats, key=lambda c: (order.index(c) if c in order else 99, c))
    out = {"corpus": manifest, "categories": {}, "any": {}, "profiles": {}}
    details = []
    for cat in cats:
        rows, totals = [], collections.OrderedDict((t, None) for t in tools)
        nfiles = 0
        for fname in results:
            lab = labels[fname]
            if not any(v["category"] == cat and v["label"] == "attacker" for v in lab.values()) and \
                    not any(cat in results[fname][t][0] for t in tools):
                continue
            nfiles += 1
            for tool in tools:
                flags, secs = results[fname][tool]
                s = score(flags.get(cat, {}), lab, cat)
                rows.append((fname, tool, s, secs))
                totals[tool] = add_scores(totals[tool], s)
                out["categories"].setdefault(cat, {}).setdefault(fname, {})[tool] = {
                    k: v for k, v in s.items() if not k.endswith("_list")}
                why = flags.get(cat, {})
                oth = sorted(ip for ip in why if lab.get(ip, {}).get("label") == "attacker"
                             and lab[ip]["category"] != cat)
                for kind, lst in (("FP", s["fp_list"]), ("missed", s["miss_list"]), ("other category", oth),
                                  ("below flagged", s["below_list"]), ("distributed flagged", s["dist_list"])):
                    for ip in lst:
                        v = lab.get(ip, {"label": "unlabelled", "profile": "-"})
                        details.append("%-10s %-16s %-20s %-20s %-40s %-28s %s" % (
                            cat, fname, tool, kind, ip, v.get("profile", "-"),
                            ",".join(sorted(why.get(ip, ()))) or json.dumps({k: v[k] for k in v if k not in ("category", "label", "profile")})))
        if nfiles > 1:
            rows += [("all files", t, s, None) for t, s in totals.items() if s]
        print_table("== %s (per source address; other = attackers of another category, below/distrib. = flagged/all)" % cat, rows)

    # ---- any category
    rows = []
    for fname in results:
        lab = labels[fname]
        for tool in tools:
            flags, secs = results[fname][tool]
            u = union(flags)
            att = {ip for ip, v in lab.items() if v["label"] == "attacker"}
            s = score({ip: 1 for ip in u}, {ip: dict(v, category="x" if v["label"] == "attacker" else v["category"])
                                             for ip, v in lab.items()}, "x")
            assert s["attackers"] == len(att)
            rows.append((fname, tool, s, secs))
            out["any"].setdefault(fname, {})[tool] = {k: v for k, v in s.items() if not k.endswith("_list")}
    print_table("== any category: a source counts as found when it has an incident (or ban) of any category", rows)

    # ---- breakdown by profile (right category), and auth.log attackers by program, address form, kinds
    print("== recall by profile (attackers found in their own category / attackers; below, distributed and")
    print("   benign profiles: sources flagged in any category / sources)")
    w = max(len(t) for t in tools)
    print(("%-16s %-38s %5s " + " ".join("%%%ds" % max(w, 9) for _ in tools)) % (("file", "profile", "n") + tuple(tools)))
    for fname in results:
        lab = labels[fname]
        groups = collections.OrderedDict()
        for ip, v in sorted(lab.items(), key=lambda kv: (kv[1]["label"] != "attacker", kv[1]["profile"])):
            groups.setdefault((v["label"], v["profile"]), []).append((ip, v))
        extra = collections.OrderedDict()
        if manifest["files"][fname]["kind"] == "ssh":
            for ip, v in lab.items():
                if v["label"] == "attacker":
                    for k in ("prog", "form"):
                        extra.setdefault(("attacker", "  attackers %s=%s" % (k, v.get(k))), []).append((ip, v))
                    kinds = "mixed" if len(v.get("kinds", [])) > 1 else "".join(v.get("kinds", []))
                    extra.setdefault(("attacker", "  attackers kinds=%s" % kinds), []).append((ip, v))
        for (label, prof), members in list(groups.items()) + sorted(extra.items()):
            cells = []
            for tool in tools:
                flags = results[fname][tool][0]
                if label == "attacker":
                    hit = sum(1 for ip, v in members if ip in flags.get(v["category"], {}))
                else:
                    u = union(flags)
                    hit = sum(1 for ip, v in members if ip in u)
                cells.append("%d/%d" % (hit, len(members)))
                out["profiles"].setdefault(fname, {}).setdefault(prof.strip(), {})[tool] = [hit, len(members)]
            name = prof if label == "attacker" else "%s [%s]" % (prof, label)
            print(("%-16s %-38s %5d " + " ".join("%%%ds" % max(w, 9) for _ in tools)) % ((fname, name, len(members)) + tuple(cells)))
    print()
    for n in notes:
        print(n)
    print()

    # ---- real corpus: no labels, list the differences
    if a.real:
        print("== real logs (no labels): sources flagged by each tool, any category; host names are PAM's rhost=")
        for path in a.real:
            flags, nosrc, secs, summ = run_canhgac(a.bin, path, "syslog", allow_hosts=True)
            cu = union(flags)
            sets = [(CANHGAC, cu, secs)]
            if use_f2b:
                for tool, mode in ((F2B_N, "normal"), (F2B_A, "aggressive")):
                    fl, s, found = run_f2b_jails(path, REAL_JAILS[mode], None, allow_hosts=True)
                    sets.append((tool, union(fl), s))
            print("%s: %s" % (os.path.basename(path), ", ".join("%s %d sources (%.2f s)" % (t, len(u), s) for t, u, s in sets)))
            for t, u, _ in sets[1:]:
                only_c, only_f = sorted(set(cu) - set(u)), sorted(set(u) - set(cu))
                print("  only canhgac, not %s (%d): %s" % (t, len(only_c), ", ".join(
                    "%s [%s]" % (ip, ",".join(sorted(cu[ip]))) for ip in only_c) or "-"))
                print("  only %s (%d): %s" % (t, len(only_f), ", ".join(only_f) or "-"))
            both = set(cu)
            for _, u, _ in sets[1:]:
                both &= set(u)
            print("  flagged by all (%d): %s" % (len(both), ", ".join(sorted(both)) or "-"))
        print()

    if a.details:
        with open(a.details, "w") as f:
            f.write("%-10s %-16s %-20s %-20s %-40s %-28s %s\n" % ("category", "file", "tool", "what", "source", "profile", "rules/jails (flagged) or label data (missed)"))
            f.write("\n".join(details) + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, default=list)


if __name__ == "__main__":
    main()
