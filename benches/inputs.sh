#!/usr/bin/env bash
# Inputs benchmark: the same real auth.log lines taken in by a tailed file (the reference), the
# syslog TCP and UDP receivers (with UDP's loss rate) and the journal input, in one run of one
# release build. The work is done by inputs_bench.py (Python 3 stdlib).
#
# Environment: LINES=200000 (lines per input), CONNS=4 (TCP connections),
#   CORPUS=<repo>/../shared/corpus/openssh_2k.log, BUILD=1 (0 skips `cargo build --release`).
# Needs journalctl and systemd-journal-remote (Debian packages systemd, systemd-journal-remote).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "${BUILD:-1}" = 1 ]; then
    (cd "$HERE/.." && cargo build --release --locked >&2)
fi
exec python3 "$HERE/inputs_bench.py"
