#!/usr/bin/env bash
# IoC feed figures: load time and RSS of a one-million-indicator feed of each kind, and
# `canhgac scan` throughput with such feeds loaded vs without, in one run (benches/feeds.py);
# then the longest pause of `canhgac run`'s pipeline while two such feeds reload, on a file change
# and on SIGHUP, tailing 20 k lines/s (benches/feeds_reload.py).
#   BUILD=0 skips `cargo build --release`; BIN=<path> measures that binary (default
#   target/release/canhgac); CORPUS_MB, DNS_LINES, RUNS, BENCH_DIR as in feeds.py;
#   RELOAD_RATE, RELOAD_PHASE_S, RELOAD_INDICATORS, RELOAD_POLL_MS as in feeds_reload.py.
set -euo pipefail
NAME=feeds.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build_release
python3 "$HERE/feeds.py"
exec python3 "$HERE/feeds_reload.py"
