#!/usr/bin/env bash
# Inputs benchmark: canhgac's inputs in one run of one release build: a tailed file (the
# reference), the journal, and the syslog TCP and UDP receivers side by side with a private
# rsyslogd given the same messages (TCP rate, UDP loss, CPU per message). The work is done by
# inputs_bench.py (Python 3 stdlib); its docstring says what each row measures.
#
# Environment: LINES=200000 (lines per file, journal and tcp row), CONNS=1,4 (TCP connections),
#   ATTACKERS=1000,20000 (distinct source addresses), UDP_RATES=10000,50000,100000 (msg/s),
#   UDP_SECS=3 (seconds per udp row), CORPUS=<repo>/../shared/corpus/openssh_2k.log,
#   BIN=<repo>/target/release/canhgac, BUILD=1 (0 skips `cargo build --release`),
#   RSYSLOGD=<rsyslogd on PATH or in /usr/sbin>.
# Needs rsyslogd (Debian package rsyslog; the system service need not run, the bench starts its
# own on free ports and kills it), journalctl and systemd-journal-remote (packages systemd,
# systemd-journal-remote), and gcc for the paced UDP sender (else a slower Python one is used).
set -euo pipefail
NAME=inputs.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Checked before the build, which takes minutes, so a missing rsyslog is said at once.
if [ -z "${RSYSLOGD:-}" ] && ! PATH="$PATH:/usr/sbin:/sbin" command -v rsyslogd >/dev/null; then
    echo "inputs.sh: rsyslogd not found: install it with \`apt-get install rsyslog\` (the bench" \
        "starts a private rsyslogd of its own; the system service may stay stopped)" >&2
    exit 1
fi
build_release
exec python3 "$HERE/inputs_bench.py"
