#!/usr/bin/env bash
# The national center under many agencies: AGENCIES simulated forwarders
# (tasks of one process, benches/center_load.rs) publish INCIDENTS incidents
# each, at REVISIONS revisions, into one private nats-server with JetStream;
# one `canhgac center` ingests them. Prints, next to the broker's own rate in
# the same run (the publishers' acknowledged rate with no consumer, which
# bounds what any center can take):
#   - incidents per second at the center (from its first to its last commit);
#   - end-to-end latency p50/p99 from the agency's commit (the message's
#     committed_us) to the center's commit (received_us), both clocks here;
#   - the center's peak and final RSS, and its store size per million incidents.
# See benches/README.md.
#
# Environment:
#   AGENCIES=1000  INCIDENTS=100  REVISIONS=2  WINDOW=32 (publishes in flight per agency)
#   PACED_INCIDENTS=10  PACED_INTERVAL_MS=1000: the latency phase, after the flood: every
#     agency sends one change a second (AGENCIES changes/s in all), well below capacity
#   BENCH_DIR=<repo>/target/bench-center   BUILD=1   BIN=<repo>/target/release/canhgac
#
# Exits 0 whatever the numbers are; non-zero only when a tool cannot be built,
# installed or run.
set -euo pipefail

NAME=center.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${AGENCIES:=1000}" "${INCIDENTS:=100}" "${REVISIONS:=2}" "${WINDOW:=32}"
: "${PACED_INCIDENTS:=10}" "${PACED_INTERVAL_MS:=1000}"
: "${BENCH_DIR:=$ROOT/target/bench-center}" "${BUILD:=1}" "${BIN:=$ROOT/target/release/canhgac}"

command -v nats-server >/dev/null 2>&1 || apt_install nats-server
command -v python3 >/dev/null 2>&1 || die "python3 is required"
build_release
[[ -x $BIN ]] || die "$BIN not found"
note "building the simulated agencies (cargo bench --bench center_load --no-run)"
(cd "$ROOT" && cargo bench --locked --quiet --bench center_load --no-run) >&2 || die "cannot build center_load"

rm -rf "$BENCH_DIR" && mkdir -p "$BENCH_DIR"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_nats() { # $1: store directory
    NATS_PORT=$(free_port)
    nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$1" >"$1.log" 2>&1 &
    NATS_PID=$!
    PIDS+=("$NATS_PID")
    for _ in $(seq 100); do grep -q "Server is ready" "$1.log" 2>/dev/null && return 0; sleep 0.1; done
    die "nats-server did not start: $(cat "$1.log")"
}

load() { # prints the load generator's JSON; extra flags in "$@"
    (cd "$ROOT" && cargo bench --locked --quiet --bench center_load -- \
        --server "nats://127.0.0.1:$NATS_PORT" --agencies "$AGENCIES" --window "$WINDOW" "$@")
}

# 1. The reference: the broker alone. A center creates the stream and its
# durable consumer and is killed; nobody reads while the agencies publish.
start_nats "$BENCH_DIR/ref-js"
start_center() { # $1: directory
    mkdir -p "$1"
    CENTER_PORT=$(free_port)
    cat >"$1/center.toml" <<EOF
center = "ncsc"
state_dir = "state"
time_zone = "Asia/Ho_Chi_Minh"
listen = "127.0.0.1:$CENTER_PORT"
[nats]
servers = ["nats://127.0.0.1:$NATS_PORT"]
EOF
    "$BIN" center --config "$1/center.toml" >"$1/center.log" 2>&1 &
    CENTER_PID=$!
    PIDS+=("$CENTER_PID")
    for _ in $(seq 100); do grep -q "center: consuming" "$1/center.log" && return 0; sleep 0.1; done
    die "center did not start: $(cat "$1/center.log")"
}
start_center "$BENCH_DIR/ref-center"
kill -9 "$CENTER_PID"
REF=$(load --incidents "$INCIDENTS" --revisions "$REVISIONS") || die "load generator failed against the broker alone"
kill -9 "$NATS_PID" 2>/dev/null || true

# 2. The center, ingesting while the agencies publish.
start_nats "$BENCH_DIR/js"
CENTER_DIR=$BENCH_DIR/center
start_center "$CENTER_DIR"
PEAK_FILE=$BENCH_DIR/peak_rss_kb
( peak=0; while kill -0 "$CENTER_PID" 2>/dev/null; do
    r=$(awk '/VmRSS/ {print $2}' "/proc/$CENTER_PID/status" 2>/dev/null || echo 0)
    (( r > peak )) && peak=$r && echo "$peak" >"$PEAK_FILE"
    sleep 0.2
  done ) &
PIDS+=("$!")
T0=$(date +%s.%N)
RUN=$(load --incidents "$INCIDENTS" --revisions "$REVISIONS") || die "load generator failed"
TOTAL=$((AGENCIES * INCIDENTS * REVISIONS))
wait_for_center() { # $1: messages committed in all
    note "waiting for the center to commit all $1 messages"
    for _ in $(seq 6000); do
        got=$(curl -s "http://127.0.0.1:$CENTER_PORT/metrics" | awk '/^canhgac_center_messages_total\{kind="incident"\}/ {print $2}')
        [[ ${got:-0} -ge $1 ]] && return 0
        sleep 0.1
    done
    die "the center committed ${got:-0} of $1 messages in 10 minutes"
}
wait_for_center "$TOTAL"
T1=$(date +%s.%N)
FLOOD_RSS=$(awk '/VmRSS/ {print $2}' "/proc/$CENTER_PID/status")
note "latency phase: $AGENCIES agencies, one change every ${PACED_INTERVAL_MS} ms each"
PACED=$(load --prefix paced --incidents "$PACED_INCIDENTS" --revisions 1 --interval-ms "$PACED_INTERVAL_MS") \
    || die "load generator failed (paced)"
wait_for_center $((TOTAL + AGENCIES * PACED_INCIDENTS))
COMMITS=$(curl -s "http://127.0.0.1:$CENTER_PORT/metrics" | awk '/^canhgac_center_commit_duration_seconds_(sum|count)/ {printf "%s ", $2}')
FINAL_RSS=$(awk '/VmRSS/ {print $2}' "/proc/$CENTER_PID/status")
PEAK_RSS=$(cat "$PEAK_FILE" 2>/dev/null || echo 0)
kill -TERM "$CENTER_PID"; wait "$CENTER_PID" 2>/dev/null || true

python3 - "$CENTER_DIR/state/center.db" "$REF" "$RUN" "$TOTAL" "$PEAK_RSS" "$FINAL_RSS" "$AGENCIES" "$INCIDENTS" "$REVISIONS" "$T0" "$T1" "$PACED" "$FLOOD_RSS" "$COMMITS" <<'EOF'
import json, os, sqlite3, sys
db, ref, run, total, peak, final, agencies, incidents, revisions, t0, t1, paced, flood_rss, commits = sys.argv[1:]
commit_sum, commit_count = (float(x) for x in commits.split())
ref, run, paced = json.loads(ref), json.loads(run), json.loads(paced)
c = sqlite3.connect(db)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
rows = c.execute("SELECT COUNT(*), MIN(received_us), MAX(received_us) FROM center_incidents").fetchone()
n, first, last = rows
def latencies(agencies):
    return sorted(r[0] for r in c.execute(
        "SELECT c.received_us - i.updated_us FROM center_incidents c JOIN incidents i ON i.id = c.incident"
        " WHERE c.agency LIKE ?", (agencies,)))
lat = latencies("agency-%")
paced_lat = latencies("paced-%")
revs = c.execute("SELECT COUNT(*) FROM center_incidents WHERE revision = ?", (int(revisions),)).fetchone()[0]
size = sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))
pct = lambda l, p: l[min(len(l) - 1, int(p * len(l)))] / 1e3
print()
print("== canhgac center benchmark")
print(f"agencies: {agencies}, incidents each: {incidents}, revisions each: {revisions} ({total} messages)")
print()
print(f"{'':38} {'messages/s':>12}")
print(f"{'broker alone (publish, acknowledged)':38} {ref['per_second']:>12,.0f}")
print(f"{'agencies publishing, center ingesting':38} {run['per_second']:>12,.0f}")
print(f"{'center ingest (start to last commit)':38} {int(total) / (float(t1) - float(t0)):>12,.0f}   ({n} incidents, {revs} at their last revision)")
print()
print(f"center batch commits: {int(commit_count)}, mean {commit_sum / max(commit_count, 1) * 1e3:.1f} ms (fsync included)")
print("latency, agency commit -> center's transaction (received_us; its commit adds the batch commit above):")
print(f"  paced, {paced['per_second']:,.0f} changes/s from {agencies} agencies: p50 {pct(paced_lat, 0.5):.1f} ms, p99 {pct(paced_lat, 0.99):.1f} ms, max {paced_lat[-1]/1e3:.1f} ms ({len(paced_lat)} incidents)")
print(f"  flood (queued in the stream, last revision of each): p50 {pct(lat, 0.5):.0f} ms, p99 {pct(lat, 0.99):.0f} ms")
print(f"center RSS: peak {int(peak)/1024:.1f} MB, after the flood {int(flood_rss)/1024:.1f} MB, at the end {int(final)/1024:.1f} MB")
print(f"center store: {size/1e6:.1f} MB for {n} incidents = {size/max(n,1):.0f} bytes per incident, {size/max(n,1):.0f} MB per million")
print(f"center ingest vs broker alone: {int(total) / (float(t1) - float(t0)) / ref['per_second']:.2f}x")
EOF
