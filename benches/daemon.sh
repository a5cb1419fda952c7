#!/usr/bin/env bash
# Daemon benchmark: `canhgac run` tailing files it is appended to, measured for
#   1. throughput while tailing (against `canhgac scan` on the same bytes, in the same run),
#   2. latency from a line's write(2) to its incident's commit, idle and under background load,
#   3. peak and steady RSS while a writer pushes PUSH_MB as fast as it can (plus bytes behind,
#      time to catch up, and latency once the detector's key table is full),
#   4. /metrics scrapes with a year of incidents in the store,
# and what the detector's persisted state costs (PHASES=state runs these five):
#   5. keys: commit time, bytes written per commit, write amplification and line-to-incident
#      latency at 1 k / 10 k / 100 k live detector keys, beside a row with no fill,
#   6. amplification: bytes written per byte of log, normal mix and a slow spread-out SQLi scan,
#   7. memory: RSS idle, peak during a PUSH_MB burst and settled after it, default max_keys,
#   8. catchup: a backlog written while the daemon is stopped, read on restart, against scan,
#   9. import: `canhgac import` of attack-heavy history, incidents/s and bytes written (per file
#      with strace), against scan,
# and what a hostile network costs the matcher:
#  10. hostile: benches/hostile.sh (`scan` of files of web attacks and of pathological lines,
#      beside `rg -j1` on the same bytes); its own settings (HOSTILE_MB, ATTACK_LINES, ...) apply.
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
#   YEAR_INCIDENTS=120000  incidents in phase 4's year
#   SCRAPE_INTERVAL=0.5    seconds between scrapes in phase 4's throughput runs
#   KEYS=0,1000,10000,100000  live detector keys per row of phase 5 (0: no fill, the reference)
#   KEYS_MAX_KEYS=200000   [pipeline] max_keys in phases 5 and 6 (above every KEYS count)
#   KEYS_RATE=2000      lines/s of phase 5's steady mix
#   KEYS_SECONDS=20     seconds of it per row
#   AMP_SECONDS=30      seconds of each phase 6 load
#   AMP_MBPS=4          benign access lines of phase 6's normal mix, MB/s
#   AMP_ATTACKS=20      attack lines/s of the normal mix (each from a fresh address)
#   SQLI_POOL=20000     addresses of phase 6's slow SQLi scan (at most 65536)
#   SQLI_RATE=10        SQLi requests/s of the scan, each from one of them at random
#   MEM_IDLE_S=5        phase 7: seconds idle after READY before the idle RSS
#   MEM_SETTLE_S=60     phase 7: seconds after catching up before the settled RSS
#   CATCHUP_MB=200      phase 8's backlog (make_corpus.py; auth.log + access.log; shares the
#                       corpus of phase 1 when equal to THROUGHPUT_MB)
#   CATCHUP_RUNS=2      phase 8 restarts and scans, alternating; the fastest counts
#   IMPORT_INCIDENTS=300000  phase 9: attacking addresses (five failed passwords each)
#   IMPORT_STRACE=20000 phase 9: addresses of the prefix imported again under `strace -f`, for
#                       the writes per file (0: skip)
#   PHASES=throughput,latency,push,scrape,keys,amplification,memory,catchup,import,hostile
#                       (aliases: state = keys to import, all = every phase)
#   BENCH_DIR=<repo>/target/bench   corpus, push corpus, scratch and results
#   CORPUS_SRC=<repo>/../shared/corpus   the real logs make_corpus.py repeats
#   BUILD=1             0 skips `cargo build --release`
#   BIN=<repo>/target/release/canhgac   the binary measured (with BUILD=0: any build, e.g. a
#                       copy of an older one, to measure before and after a change)
#
# Needs no root (phase 9 installs strace with apt-get when it is missing and this runs as root,
# else skips the writes per file). Every daemon it starts is stopped on exit, whatever the exit (trap).
# Exits 0 whatever the numbers are; non-zero only when something cannot be built or run.
set -euo pipefail

NAME=daemon.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${THROUGHPUT_MB:=200}" "${RUNS:=3}" "${LAT_LINES:=200}" "${LAT_SPACING_MS:=50}" "${LOAD_MBPS:=4}"
: "${PUSH_MB:=1024}" "${PUSH_MAX_KEYS:=0}" "${WEB_POOL:=30000}" "${SSH_POOL:=1000000}" "${FULL_LAT_LINES:=20}"
: "${CATCHUP_TIMEOUT:=600}" "${PERF:=0}" "${YEAR_INCIDENTS:=120000}" "${SCRAPE_INTERVAL:=0.5}"
: "${KEYS:=0,1000,10000,100000}" "${KEYS_MAX_KEYS:=200000}" "${KEYS_RATE:=2000}" "${KEYS_SECONDS:=20}"
: "${AMP_SECONDS:=30}" "${AMP_MBPS:=4}" "${AMP_ATTACKS:=20}" "${SQLI_POOL:=20000}" "${SQLI_RATE:=10}"
: "${MEM_IDLE_S:=5}" "${MEM_SETTLE_S:=60}" "${CATCHUP_MB:=200}" "${CATCHUP_RUNS:=2}"
: "${IMPORT_INCIDENTS:=300000}" "${IMPORT_STRACE:=20000}"
: "${PHASES:=throughput,latency,push,scrape,keys,amplification,memory,catchup,import,hostile}"
: "${BENCH_DIR:=$ROOT/target/bench}" "${CORPUS_SRC:=$ROOT/../shared/corpus}" "${BUILD:=1}"
: "${BIN:=$ROOT/target/release/canhgac}"
# Phase 10 is benches/hostile.sh, run after the others; daemon_bench.py gets the rest.
HOSTILE=0
[[ ,$PHASES, =~ ,(hostile|all), ]] && HOSTILE=1
PHASES=$( (tr "," "\n" <<<"$PHASES" | grep -vx hostile || true) | paste -sd, -)

for v in RUNS LAT_LINES LAT_SPACING_MS PUSH_MB WEB_POOL SSH_POOL CATCHUP_TIMEOUT YEAR_INCIDENTS \
         KEYS_MAX_KEYS SQLI_POOL CATCHUP_RUNS IMPORT_INCIDENTS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
for v in THROUGHPUT_MB LOAD_MBPS SCRAPE_INTERVAL KEYS_RATE KEYS_SECONDS AMP_SECONDS AMP_MBPS AMP_ATTACKS \
         SQLI_RATE MEM_IDLE_S MEM_SETTLE_S CATCHUP_MB; do
    [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$v must be a number (got '${!v}')"
done
for v in PUSH_MAX_KEYS FULL_LAT_LINES PERF IMPORT_STRACE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
[[ $KEYS =~ ^[0-9]+(,[0-9]+)*$ ]] || die "KEYS must be a comma-separated list of integers (got '$KEYS')"
for v in KEYS_RATE AMP_MBPS AMP_ATTACKS SQLI_RATE; do
    python3 -c "import sys; sys.exit(not float('${!v}') > 0)" || die "$v must be above 0"
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
build_release
[[ -x $BIN ]] || die "$BIN not found"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
# Phase 9's per-file writes need strace; without it (and no way to install it) they are skipped.
if [[ $IMPORT_STRACE != 0 && ,$PHASES, =~ ,(import|state|all), ]] && ! command -v strace >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        note "installing strace (phase 9's writes per file)"
        apt-get install -y -qq strace >&2 || note "WARNING: apt-get install strace failed; per-file writes skipped"
    else
        note "WARNING: strace not installed; phase 9's per-file writes skipped"
    fi
fi

# ---------------------------------------------------------------- corpus (shared with compare.sh)
mkdir -p "$BENCH_DIR" "$OUT"
# Phase 1 replays auth.log and access.log; phases 2 and 3 take their benign lines from access.log.
python3 "$HERE/make_corpus.py" --src "$CORPUS_SRC" --out "$BENCH_DIR/corpus" --mb "$THROUGHPUT_MB" \
    || die "make_corpus.py failed"
# Phase 8's backlog: the same corpus unless its size differs.
CATCHUP_CORPUS=$BENCH_DIR/corpus
if [[ ,$PHASES, =~ ,(catchup|state|all), ]] && python3 -c "import sys; sys.exit(float('$CATCHUP_MB') == float('$THROUGHPUT_MB'))"; then
    CATCHUP_CORPUS=$BENCH_DIR/corpus-catchup
    python3 "$HERE/make_corpus.py" --src "$CORPUS_SRC" --out "$CATCHUP_CORPUS" --mb "$CATCHUP_MB" \
        || die "make_corpus.py failed (catchup corpus)"
fi

# ---------------------------------------------------------------- header
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "canhgac daemon benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
dirty=$(cd "$ROOT" && git status --porcelain -- benches 2>/dev/null | wc -l)
echo "  binary:  $BIN: $("$BIN" --version 2>/dev/null || echo canhgac), built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC')"
echo "  scripts: benches/ at commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$( ((dirty)) && echo ", with uncommitted changes")"
echo "  machine: ${cpu:-unknown CPU}, $(nproc) CPUs online, $(awk '/MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
echo "  state and logs on: $(df -hT "$BENCH_DIR" | awk 'NR == 2 {print $2, "(" $1 ")"}')"
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares its CPUs: compare"
echo "                CPU-time columns, which load does not inflate, as well as wall clock)"
echo

# ---------------------------------------------------------------- run
if [[ -n $PHASES ]]; then
    python3 "$HERE/daemon_bench.py" \
        --bin "$BIN" --corpus "$BENCH_DIR/corpus" --bench-dir "$BENCH_DIR" --work "$WORK" \
        --results "$OUT" --pidfile "$PIDFILE" --phases "$PHASES" --runs "$RUNS" \
        --lat-lines "$LAT_LINES" --lat-spacing "$(python3 -c "print($LAT_SPACING_MS / 1000)")" \
        --load-mbps "$LOAD_MBPS" --push-mb "$PUSH_MB" --max-keys "$PUSH_MAX_KEYS" \
        --web-pool "$WEB_POOL" --ssh-pool "$SSH_POOL" --full-lat-lines "$FULL_LAT_LINES" \
        --catchup-timeout "$CATCHUP_TIMEOUT" --perf "$PERF" \
        --year-incidents "$YEAR_INCIDENTS" --scrape-interval "$SCRAPE_INTERVAL" \
        --keys "$KEYS" --keys-max-keys "$KEYS_MAX_KEYS" --keys-rate "$KEYS_RATE" --keys-seconds "$KEYS_SECONDS" \
        --amp-seconds "$AMP_SECONDS" --amp-mbps "$AMP_MBPS" --amp-attacks "$AMP_ATTACKS" \
        --sqli-pool "$SQLI_POOL" --sqli-rate "$SQLI_RATE" --mem-idle "$MEM_IDLE_S" --mem-settle "$MEM_SETTLE_S" \
        --catchup-corpus "$CATCHUP_CORPUS" --catchup-runs "$CATCHUP_RUNS" \
        --import-incidents "$IMPORT_INCIDENTS" --import-strace "$IMPORT_STRACE" &
    HELPER=$!
    status=0
    wait "$HELPER" || status=$?
    HELPER=
    ((status == 0)) || die "daemon_bench.py failed (status $status); daemon logs in $WORK/*/daemon.err"
    note "raw figures in $OUT/daemon.json; daemon logs in $WORK/*/daemon.err"
fi
if ((HOSTILE)); then
    note "phase 10: benches/hostile.sh"
    BUILD=0 BIN=$BIN bash "$HERE/hostile.sh" || die "hostile.sh failed"
fi
