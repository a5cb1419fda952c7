"""Helpers shared by the Python benches (stdlib only).

The benches import it by name: Python puts a script's own directory first on sys.path, so
`python3 benches/x.py` finds it from any working directory.
"""
import os


def parse_metrics(text):
    """{'name{labels}': value} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def write_rsyslog_conf(workdir, module, port):
    """Writes workdir/rsyslog.conf: one `module` input on 127.0.0.1:port whose every message goes
    to workdir/out.log with RSYSLOG_TraditionalFileFormat (as Debian writes auth.log). Returns the
    paths of the configuration and of the output file."""
    conf, out = os.path.join(workdir, "rsyslog.conf"), os.path.join(workdir, "out.log")
    # No DNS: the bench machine may be offline, and a reverse lookup of the sender would time the
    # resolver, not rsyslog (canhgac does none).
    with open(conf, "w") as f:
        f.write(f'global(workDirectory="{workdir}" net.enableDNS="off")\n'
                f'module(load="{module}")\n'
                f'input(type="{module}" address="127.0.0.1" port="{port}" ruleset="bench")\n'
                f'ruleset(name="bench") {{\n'
                f'  action(type="omfile" file="{out}" template="RSYSLOG_TraditionalFileFormat")\n}}\n')
    return conf, out


class LineCounter:
    """Lines written so far to a file that may not exist yet (rsyslogd creates its output with the
    first message). Each count reads on from where the last one stopped, so polling stays cheap."""

    def __init__(self, path):
        self.path, self.file, self.lines = path, None, 0

    def count(self):
        if self.file is None:
            try:
                self.file = open(self.path, "rb")
            except FileNotFoundError:
                return 0
        self.lines += self.file.read().count(b"\n")
        return self.lines

    def close(self):
        if self.file:
            self.file.close()
