#!/usr/bin/env bash
# Hostile-input benchmark: `canhgac scan` on files an attacker can make a server log (every line a
# web attack from many addresses; `..%2f` repeated hundreds of times; long percent-encoded runs;
# huge user agents; very long lines; runs of spaces; runs of backslashes; UTF-8 and invalid bytes;
# sshd user names full of " from "), next to `rg -j1` with the same patterns on the same bytes.
# See benches/README.md.
#
# Environment:
#   HOSTILE_MB=20         size of each hostile file, MB (10^6 bytes)
#   ATTACK_LINES=1000000  lines of the file of web attacks
#   ADDRESSES=20000       distinct client addresses the lines come from
#   KINDS=                comma-separated subset of the kinds (default: all)
#   RUNS=1                runs of each command; the fastest counts
#   TIMEOUT=600           seconds after which a run is recorded as a timeout
#   BENCH_DIR=<repo>/target/bench-hostile   files and results (files reused while unchanged)
#   BUILD=1               0 skips `cargo build --release`
#   BIN=<repo>/target/release/canhgac       the binary measured
#   BASE_BIN=             an older build measured too, in the same run (before/after figures)
#
# Exits 0 whatever the numbers are (it is a measurement, not a test); non-zero only when a tool
# cannot be built, installed or run.
set -euo pipefail

NAME=hostile.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${HOSTILE_MB:=20}" "${ATTACK_LINES:=1000000}" "${ADDRESSES:=20000}" "${KINDS:=}" "${RUNS:=1}" "${TIMEOUT:=600}"
: "${BENCH_DIR:=$ROOT/target/bench-hostile}" "${BUILD:=1}" "${BIN:=$ROOT/target/release/canhgac}" "${BASE_BIN:=}"

command -v python3 >/dev/null 2>&1 || die "python3 is required"
command -v rg >/dev/null 2>&1 || apt_install ripgrep
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"

build_release
[[ -x $BIN ]] || die "$BIN not found"
[[ -z $BASE_BIN || -x $BASE_BIN ]] || die "BASE_BIN $BASE_BIN not found"

FILES=$BENCH_DIR/files
note "generating the files in $FILES (reused while the parameters are unchanged)"
gen=(--out "$FILES" --mb "$HOSTILE_MB" --attack-lines "$ATTACK_LINES" --addresses "$ADDRESSES")
[[ -n $KINDS ]] && gen+=(--kinds "$KINDS")
python3 "$HERE/hostile_gen.py" "${gen[@]}" || die "hostile_gen.py failed"

bench=(--bin "$BIN" --dir "$FILES" --out "$BENCH_DIR/results" --runs "$RUNS" --timeout "$TIMEOUT")
[[ -n $BASE_BIN ]] && bench+=(--base-bin "$BASE_BIN")
[[ -n $KINDS ]] && bench+=(--kinds "$KINDS")
python3 "$HERE/hostile_bench.py" "${bench[@]}" || die "hostile_bench.py failed"
