#!/usr/bin/env python3
"""What a steady UDP syslog feed costs the daemon beyond reading it: syscalls and CPU time of
`canhgac run` with one UDP input while a sender paces sshd failure datagrams at RATE msg/s for
SECONDS, counted with `strace -f -c` (a second, untraced run gives the CPU time). Every binary
given is measured in the same run, on the same datagrams.

Usage: udp_wakeups.py --bin PATH [--bin PATH ...] [--rate 10000] [--seconds 3] [--attackers 1000]
Needs strace. Python 3 standard library only. Prints a table; a measurement, not a test.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port, rate, seconds, attackers):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msgs = [(f"<38>Nov  1 00:00:00 host sshd[4242]: Failed password for root from "
             f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256} port 4242 ssh2").encode()
            for i in range(attackers)]
    start = time.monotonic()
    sent = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            return sent
        due = int(elapsed * rate)
        while sent < due:
            sock.sendto(msgs[sent % attackers], ("127.0.0.1", port))
            sent += 1
        time.sleep(0.001)


def run(binary, rate, seconds, attackers, trace):
    with tempfile.TemporaryDirectory() as work:
        port, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
        with open(os.path.join(work, "canhgac.toml"), "w") as f:
            f.write(f'agency = "bench"\ntime_zone = "UTC"\nstate_dir = "{work}/state"\n'
                    f'[http]\nlisten = "127.0.0.1:{http}"\n'
                    f'[[input]]\nname = "udp"\ntype = "syslog-udp"\nlisten = "127.0.0.1:{port}"\n')
        cmd = [binary, "run", "--config", os.path.join(work, "canhgac.toml")]
        summary = os.path.join(work, "strace.txt")
        if trace:
            cmd = ["strace", "-f", "-c", "-o", summary] + cmd
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        pid = proc.pid
        if trace:
            kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            pid = int(kids[0]) if kids else proc.pid
        def cpu():
            with open(f"/proc/{pid}/stat") as s:
                fields = s.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        before = cpu()
        sent = send(port, rate, seconds, attackers)
        time.sleep(0.5)
        used = cpu() - before
        # The daemon itself (strace passes no signal on): stops, strace writes its summary.
        os.kill(pid, 15)
        proc.wait(timeout=60)
        calls = {}
        if trace:
            for line in open(summary):
                m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)(?:\s+\d+)?\s+(\w+)$", line)
                if m:
                    calls[m.group(2)] = int(m.group(1))
        return sent, used, calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True)
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--attackers", type=int, default=1000)
    a = ap.parse_args()
    if not shutil.which("strace"):
        sys.exit("udp_wakeups.py: strace is required")
    print(f"UDP feed: {a.rate} msg/s for {a.seconds} s from {a.attackers} addresses")
    print(f"{'binary':40} {'sent':>8} {'CPU s':>7} {'CPU us/msg':>10} {'openat':>8} {'read':>8} {'recvmmsg':>9} {'statx':>7}")
    for b in a.bin:
        sent, used, _ = run(b, a.rate, a.seconds, a.attackers, False)
        _, _, calls = run(b, a.rate, a.seconds, a.attackers, True)
        print(f"{b[-40:]:40} {sent:>8} {used:>7.2f} {used / max(sent, 1) * 1e6:>10.1f} "
              f"{calls.get('openat', 0):>8} {calls.get('read', 0):>8} "
              f"{calls.get('recvmmsg', 0) + calls.get('recvfrom', 0) + calls.get('recvmsg', 0):>9} "
              f"{calls.get('statx', 0) + calls.get('newfstatat', 0):>7}")


if __name__ == "__main__":
    main()
