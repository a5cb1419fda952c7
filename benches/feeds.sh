#!/usr/bin/env bash
# IoC feed figures: load time and RSS of a one-million-indicator feed of each kind, and
# `canhgac scan` throughput with such feeds loaded vs without, in one run. See benches/feeds.py.
#   BUILD=0 skips `cargo build --release`; CORPUS_MB, DNS_LINES, RUNS, BENCH_DIR as in feeds.py.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
if [ "${BUILD:-1}" != 0 ]; then
    (cd "$ROOT" && cargo build --release --locked)
fi
exec python3 "$HERE/feeds.py"
