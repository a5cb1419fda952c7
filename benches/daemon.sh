#!/usr/bin/env bash
# Daemon benchmark: `canhgac run` tailing files it is appended to, measured for
#   1. throughput while tailing (against `canhgac scan` on the same bytes, in the same run),
#   2. latency from a line's write(2) to its incident's commit, idle and under background load,
#   3. peak and steady RSS while a writer pushes PUSH_MB as fast as it can (plus bytes behind,
#      time to catch up, and latency once the detector's key table is full).
# The work is done by daemon_bench.py (Python 3 stdlib); see benches/README.md.
#
# Environment:
#   THROUGHPUT_MB=200   corpus size for phase 1 (make_corpus.py; auth.log + access.log are used)
#   RUNS=3              phase 1 runs of the daemon and of scan, alternating; the best counts
#   LAT_LINES=200       attack lines per latency series (idle, then under load)
#   LAT_SPACING_MS=50   between them
#   LOAD_MBPS=4         background load of benign access lines during the second series, MB/s
#   PUSH_MB=1024        size of the phase 3 push (generated once, kept in BENCH_DIR/push)
#   PUSH_MAX_KEYS=      [pipeline] max_keys for phase 3 (empty: the daemon's default, 100000)
#   WEB_POOL=30000      addresses the push's web attacks come from (at most 65536)
#   SSH_POOL=1000000    addresses the push's SSH failures come from (at most 4194304)
#   FULL_LAT_LINES=20   latency lines after the push, 300 ms apart, key table full (0: skip)
#   CATCHUP_TIMEOUT=600 seconds the daemon may take to catch up before a phase gives up
#   PERF=0              seconds of `perf record --call-graph dwarf` on the daemon during the push
#                       (0: none); the report goes to results-daemon/perf.txt
#   PHASES=throughput,latency,push
#   BENCH_DIR=<repo>/target/bench   corpus, push corpus, scratch and results
#   CORPUS_SRC=<repo>/../shared/corpus   the real logs make_corpus.py repeats
#   BUILD=1             0 skips `cargo build --release`
#
# Needs no root. Every daemon it starts is stopped on exit, whatever the exit (trap).
# Exits 0 whatever the numbers are; non-zero only when something cannot be built or run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
THROUGHPUT_MB=${THROUGHPUT_MB:-200}
RUNS=${RUNS:-3}
LAT_LINES=${LAT_LINES:-200}
LAT_SPACING_MS=${LAT_SPACING_MS:-50}
LOAD_MBPS=${LOAD_MBPS:-4}
PUSH_MB=${PUSH_MB:-1024}
PUSH_MAX_KEYS=${PUSH_MAX_KEYS:-0}
WEB_POOL=${WEB_POOL:-30000}
SSH_POOL=${SSH_POOL:-1000000}
FULL_LAT_LINES=${FULL_LAT_LINES:-20}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-600}
PERF=${PERF:-0}
YEAR_INCIDENTS=${YEAR_INCIDENTS:-120000}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-0.5}
PHASES=${PHASES:-throughput,latency,push,scrape}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
CORPUS_SRC=${CORPUS_SRC:-$ROOT/../shared/corpus}
BUILD=${BUILD:-1}
BIN=$ROOT/target/release/canhgac

die() { echo "daemon.sh: error: $*" >&2; exit 1; }
note() { echo "daemon.sh: $*" >&2; }

for v in RUNS LAT_LINES LAT_SPACING_MS PUSH_MB WEB_POOL SSH_POOL CATCHUP_TIMEOUT YEAR_INCIDENTS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
for v in THROUGHPUT_MB LOAD_MBPS SCRAPE_INTERVAL; do
    [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$v must be a number (got '${!v}')"
done
for v in PUSH_MAX_KEYS FULL_LAT_LINES PERF; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
command -v python3 >/dev/null 2>&1 || die "python3 is required"
if [[ $PERF != 0 ]] && ! command -v perf >/dev/null 2>&1; then
    die "PERF=$PERF but perf is not installed"
fi
[[ -d $CORPUS_SRC ]] || die "real logs not found at $CORPUS_SRC"

WORK=$BENCH_DIR/daemon        # one directory per phase: config, logs, state, daemon.err
OUT=$BENCH_DIR/results-daemon
PIDFILE=$BENCH_DIR/daemon.pid # the running daemon, written by daemon_bench.py
HELPER=

# Stop whatever we started: the helper (which stops its daemon itself), then any daemon it left.
cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    if [[ -n $HELPER ]] && kill -0 "$HELPER" 2>/dev/null; then
        kill -TERM "$HELPER" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$HELPER" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$HELPER" 2>/dev/null || true
    fi
    if [[ -f $PIDFILE ]]; then
        local pid
        pid=$(cat "$PIDFILE" 2>/dev/null || true)
        # Only a canhgac run of ours: its command line names a config under $WORK.
        if [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "run --config $WORK/"; then
            note "stopping canhgac run (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$PIDFILE"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- build
if [[ $BUILD != 0 ]]; then
    note "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet) >&2 || die "cargo build --release failed"
fi
[[ -x $BIN ]] || die "$BIN not found"

# ---------------------------------------------------------------- corpus (shared with compare.sh)
mkdir -p "$BENCH_DIR" "$OUT"
# Phase 1 replays auth.log and access.log; phases 2 and 3 take their benign lines from access.log.
python3 "$HERE/make_corpus.py" --src "$CORPUS_SRC" --out "$BENCH_DIR/corpus" --mb "$THROUGHPUT_MB" \
    || die "make_corpus.py failed"

# ---------------------------------------------------------------- header
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "canhgac daemon benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  binary:  $("$BIN" --version 2>/dev/null || echo canhgac), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "  machine: ${cpu:-unknown CPU}, $(nproc) CPUs online, $(awk '/MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
echo "  state and logs on: $(df -hT "$BENCH_DIR" | awk 'NR == 2 {print $2, "(" $1 ")"}')"
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares its CPUs: compare"
echo "                CPU-time columns, which load does not inflate, as well as wall clock)"
echo

# ---------------------------------------------------------------- run
python3 "$HERE/daemon_bench.py" \
    --bin "$BIN" --corpus "$BENCH_DIR/corpus" --bench-dir "$BENCH_DIR" --work "$WORK" \
    --results "$OUT" --pidfile "$PIDFILE" --phases "$PHASES" --runs "$RUNS" \
    --lat-lines "$LAT_LINES" --lat-spacing "$(python3 -c "print($LAT_SPACING_MS / 1000)")" \
    --load-mbps "$LOAD_MBPS" --push-mb "$PUSH_MB" --max-keys "$PUSH_MAX_KEYS" \
    --web-pool "$WEB_POOL" --ssh-pool "$SSH_POOL" --full-lat-lines "$FULL_LAT_LINES" \
    --catchup-timeout "$CATCHUP_TIMEOUT" --perf "$PERF" \
    --year-incidents "$YEAR_INCIDENTS" --scrape-interval "$SCRAPE_INTERVAL" &
HELPER=$!
status=0
wait "$HELPER" || status=$?
HELPER=
((status == 0)) || die "daemon_bench.py failed (status $status); daemon logs in $WORK/*/daemon.err"
note "raw figures in $OUT/daemon.json; daemon logs in $WORK/*/daemon.err"
