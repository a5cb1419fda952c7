#!/usr/bin/env bash
# Throughput benchmark: canhgac scan vs ripgrep (same patterns) vs fail2ban-regex (sshd filter),
# on the same bytes, in one run. See benches/README.md.
#
# Environment:
#   CORPUS_MB=200     minimum corpus size in MB (10^6 bytes)
#   RUNS=3            runs of canhgac and rg; the best (fastest) counts
#   F2B_LINES=200000  lines of auth.log given to fail2ban-regex (it runs ~40k lines/s)
#   F2B_RUNS=1        runs of fail2ban-regex; the best counts
#   PER_FILE=1        also time canhgac and rg -j1 file by file (0 to skip)
#   BENCH_DIR=<repo>/target/bench   where the corpus and results go (reused between runs)
#   CORPUS_SRC=<repo>/../shared/corpus   the real logs the corpus repeats
#   F2B_FILTER=/etc/fail2ban/filter.d/sshd.conf
#   BUILD=1           0 skips `cargo build --release` (uses the existing binary)
#   BIN=<repo>/target/release/canhgac   the binary measured (with BUILD=0: any build, e.g. an
#                     older commit's, to compare two binaries on the same rules)
#   RULES_DIR=        a rules directory used instead of the built-in rules (canhgac and rg both);
#                     with BIN, the matcher's own cost on a fixed rule set
#
# Exits 0 whatever the numbers are (it is a measurement, not a test); non-zero only when a tool
# cannot be built, installed or run.
set -euo pipefail

NAME=compare.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${CORPUS_MB:=200}" "${RUNS:=3}" "${F2B_LINES:=200000}" "${F2B_RUNS:=1}" "${PER_FILE:=1}"
: "${BENCH_DIR:=$ROOT/target/bench}" "${CORPUS_SRC:=$ROOT/../shared/corpus}"
: "${F2B_FILTER:=/etc/fail2ban/filter.d/sshd.conf}" "${BUILD:=1}" "${BIN:=$ROOT/target/release/canhgac}"
RULE_ARGS=()
RULES_NOTE="all default rules"
if [[ -n ${RULES_DIR:-} ]]; then
    RULE_ARGS=(--no-default-rules --rules "$RULES_DIR")
    RULES_NOTE="the rules of $RULES_DIR"
fi
TIME=/usr/bin/time

# ---------------------------------------------------------------- dependencies
need_pkgs=()
command -v rg >/dev/null 2>&1 || need_pkgs+=(ripgrep)
command -v fail2ban-regex >/dev/null 2>&1 || need_pkgs+=(fail2ban)
[[ -x $TIME ]] || need_pkgs+=(time)
apt_install "${need_pkgs[@]}"
command -v python3 >/dev/null 2>&1 || die "python3 is required"
[[ -f $F2B_FILTER ]] || die "fail2ban filter $F2B_FILTER not found"
[[ -d $CORPUS_SRC ]] || die "real logs not found at $CORPUS_SRC"
[[ $RUNS =~ ^[1-9][0-9]*$ && $F2B_RUNS =~ ^[1-9][0-9]*$ && $F2B_LINES =~ ^[1-9][0-9]*$ ]] \
    || die "RUNS, F2B_RUNS and F2B_LINES must be positive integers"

# ---------------------------------------------------------------- build
build_release
[[ -x $BIN ]] || die "$BIN not found"

# ---------------------------------------------------------------- corpus
mkdir -p "$BENCH_DIR"
CORPUS=$BENCH_DIR/corpus
python3 "$HERE/make_corpus.py" --src "$CORPUS_SRC" --out "$CORPUS" --mb "$CORPUS_MB" \
    || die "make_corpus.py failed"
FILES=("$CORPUS/auth.log" "$CORPUS/access.log" "$CORPUS/error.log")
TYPES=(syslog apache apache-error)
for f in "${FILES[@]}"; do [[ -s $f ]] || die "corpus file $f missing or empty"; done

OUT=$BENCH_DIR/results
rm -rf "$OUT"
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv   # tool, bytes, lines, seconds, rss_kb, note
: > "$RESULTS"

bytes_of() { local n=0 f; for f in "$@"; do n=$((n + $(stat -c %s "$f"))); done; echo "$n"; }
lines_of() { cat "$@" | wc -l; }
warm() { cat "$@" > /dev/null; }

# measure LABEL OKCODES STDOUT CMD...: run CMD $RUNS times (or $MEASURE_RUNS), keep the best wall
# time (bash's microsecond clock around /usr/bin/time) and the highest peak RSS (%M, KB).
# OKCODES is a regex of accepted exit codes. Sets M_SECS, M_RSS; CMD's stdout goes to STDOUT,
# its stderr to $OUT/LABEL.err.
measure() {
    local label=$1 ok=$2 stdout=$3; shift 3
    local runs=${MEASURE_RUNS:-$RUNS} i t0 t1 secs rss status
    M_SECS= M_RSS=0
    for ((i = 0; i < runs; i++)); do
        status=0
        t0=$EPOCHREALTIME
        "$TIME" -f '%M' -o "$OUT/time.tmp" "$@" > "$stdout" 2> "$OUT/$label.err" || status=$?
        t1=$EPOCHREALTIME
        if [[ ! $status =~ ^($ok)$ ]]; then
            echo "compare.sh: error: $label exited with status $status: $*" >&2
            tail -n 20 "$OUT/$label.err" >&2
            exit 1
        fi
        secs=$(python3 -c "print(f'{$t1 - $t0:.6f}')")
        rss=$(tail -n 1 "$OUT/time.tmp")
        [[ $rss =~ ^[0-9]+$ ]] || die "could not read peak RSS of $label"
        if [[ -z $M_SECS ]] || python3 -c "import sys; sys.exit(not $secs < $M_SECS)"; then
            M_SECS=$secs
        fi
        if ((rss > M_RSS)); then M_RSS=$rss; fi
    done
}

record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RESULTS"; }

# ---------------------------------------------------------------- patterns for rg
PATTERNS=$OUT/patterns.txt
"$BIN" rules patterns "${RULE_ARGS[@]}" > "$OUT/patterns.all" || die "canhgac rules patterns failed"
n_all=$(grep -c '' "$OUT/patterns.all" || true)
((n_all > 0)) || die "canhgac rules patterns printed no patterns"
if grep -q '^$' "$OUT/patterns.all"; then
    note "WARNING: empty line(s) in the pattern list dropped (an empty pattern matches every line)"
fi
grep -v '^$' "$OUT/patterns.all" > "$PATTERNS" || true
# rg must accept every pattern; find and drop the ones it rejects, and say which.
REJECTED=$OUT/patterns.rejected
REWRITTEN=$OUT/patterns.rewritten
: > "$REJECTED"
: > "$REWRITTEN"
rg_check() { local s=0; rg -q -f "$1" /dev/null 2> "$OUT/rg-check.err" || s=$?; [[ $s == 1 || $s == 0 ]]; }
if ! rg_check "$PATTERNS"; then
    note "WARNING: rg rejects the pattern set ($(grep -v '^[[:space:]]*$' "$OUT/rg-check.err" | tail -n 1)); checking the patterns one by one"
    : > "$OUT/patterns.ok"
    while IFS= read -r p; do
        printf '%s\n' "$p" > "$OUT/one.pat"
        if rg_check "$OUT/one.pat"; then
            printf '%s\n' "$p" >> "$OUT/patterns.ok"
            continue
        fi
        err=$(grep -v '^[[:space:]]*$' "$OUT/rg-check.err" | tail -n 1)
        # Older rg (13.x: regex-syntax 0.6) rejects escapes of punctuation that is not a regex
        # metacharacter, such as \" and \/, which canhgac's regex accepts. Dropping such a
        # backslash gives the same regex; keep the rewritten pattern if rg then accepts it.
        compat=$(printf '%s' "$p" | python3 -c '
import sys
p, out, i = sys.stdin.read(), [], 0
meta = set("\\.+*?()|[]{}^$#&-~<>")
while i < len(p):
    if p[i] == "\\" and i + 1 < len(p):
        c = p[i + 1]
        out.append(c if (c.isascii() and not c.isalnum() and not c.isspace() and c not in meta) else p[i:i + 2])
        i += 2
    else:
        out.append(p[i]); i += 1
print("".join(out), end="")')
        printf '%s\n' "$compat" > "$OUT/one.pat"
        if [[ $compat != "$p" ]] && rg_check "$OUT/one.pat"; then
            printf '%s\n' "$compat" >> "$OUT/patterns.ok"
            printf '%s\t%s\t%s\n' "$p" "$err" "$compat" >> "$REWRITTEN"
        else
            printf '%s\t%s\n' "$p" "$err" >> "$REJECTED"
        fi
    done < "$PATTERNS"
    mv "$OUT/patterns.ok" "$PATTERNS"
    rg_check "$PATTERNS" || die "rg rejects the pattern set even without the patterns it rejects one by one: $(cat "$OUT/rg-check.err")"
fi
n_pat=$(grep -c '' "$PATTERNS" || true)
((n_pat > 0)) || die "rg accepts none of the $n_all patterns"

# ---------------------------------------------------------------- headline runs
ALL_BYTES=$(bytes_of "${FILES[@]}")
ALL_LINES=$(lines_of "${FILES[@]}")

note "canhgac scan (all files, best of $RUNS)"
warm "${FILES[@]}"
measure canhgac 0 /dev/null "$BIN" scan "${RULE_ARGS[@]}" "${FILES[@]}"
CANHGAC_SUMMARY=$(grep '^canhgac: ' "$OUT/canhgac.err" | tail -n 1 || true)
record "canhgac scan" "$ALL_BYTES" "$ALL_LINES" "$M_SECS" "$M_RSS" "1 thread, $RULES_NOTE, 3 files in one run"

note "rg -j1 (best of $RUNS)"
warm "${FILES[@]}"
measure rg-j1 '0|1' "$OUT/rg-j1.out" rg -j1 -c -f "$PATTERNS" "${FILES[@]}"
record "rg -j1 -c -f" "$ALL_BYTES" "$ALL_LINES" "$M_SECS" "$M_RSS" "1 thread, $n_pat patterns"

note "rg (default threads, best of $RUNS)"
warm "${FILES[@]}"
measure rg '0|1' "$OUT/rg.out" rg -c -f "$PATTERNS" "${FILES[@]}"
record "rg -c -f" "$ALL_BYTES" "$ALL_LINES" "$M_SECS" "$M_RSS" "default threads ($(nproc) CPUs), $n_pat patterns"

# ---------------------------------------------------------------- fail2ban-regex
F2B_IN=$OUT/auth-prefix.log
head -n "$F2B_LINES" "${FILES[0]}" > "$F2B_IN"
F2B_BYTES=$(bytes_of "$F2B_IN")
F2B_N=$(lines_of "$F2B_IN")
note "fail2ban-regex on the first $F2B_N lines of auth.log (best of $F2B_RUNS)"
warm "$F2B_IN"
MEASURE_RUNS=$F2B_RUNS measure fail2ban-regex 0 "$OUT/fail2ban.out" \
    fail2ban-regex "$F2B_IN" "$F2B_FILTER"
F2B_PROC=$(sed -n 's/^\[processed in \([0-9.]*\) sec\]$/\1/p' "$OUT/fail2ban.out" | tail -n 1)
F2B_SEEN=$(sed -n 's/^Lines: \([0-9]*\) lines,.*/\1/p' "$OUT/fail2ban.out" | tail -n 1)
F2B_SUMMARY=$(grep '^Lines: ' "$OUT/fail2ban.out" | tail -n 1 || true)
[[ $F2B_SEEN == "$F2B_N" ]] || note "WARNING: fail2ban-regex reports ${F2B_SEEN:-?} lines, expected $F2B_N"
record "fail2ban-regex" "$F2B_BYTES" "$F2B_N" "$M_SECS" "$M_RSS" "sshd filter, prefix of auth.log, best of $F2B_RUNS"
note "canhgac scan on the same lines as fail2ban-regex (best of $RUNS)"
warm "$F2B_IN"
measure canhgac-prefix 0 /dev/null "$BIN" scan "${RULE_ARGS[@]}" --type syslog "$F2B_IN"
record "canhgac, fail2ban's lines" "$F2B_BYTES" "$F2B_N" "$M_SECS" "$M_RSS" "scan --type syslog, $RULES_NOTE, same prefix of auth.log"

# ---------------------------------------------------------------- per file
if [[ $PER_FILE != 0 ]]; then
    for i in 0 1 2; do
        f=${FILES[$i]} t=${TYPES[$i]} name=$(basename "${FILES[$i]}")
        b=$(bytes_of "$f") l=$(lines_of "$f")
        warm "$f"
        note "per file: $name"
        measure "canhgac-$t" 0 /dev/null "$BIN" scan "${RULE_ARGS[@]}" --type "$t" "$f"
        record "  canhgac --type $t" "$b" "$l" "$M_SECS" "$M_RSS" "$name"
        "$BIN" rules patterns "${RULE_ARGS[@]}" --type "$t" > "$OUT/patterns.$t.all" || die "canhgac rules patterns --type $t failed"
        # same treatment as the full list: rewritten patterns in their rg form, rejected ones out
        python3 - "$OUT/patterns.$t.all" "$REWRITTEN" "$REJECTED" > "$OUT/patterns.$t" <<'PY' || die "filtering $t patterns failed"
import sys
pats, rewritten, rejected = sys.argv[1:]
rw = dict((l.rstrip("\n").split("\t")[0], l.rstrip("\n").split("\t")[2]) for l in open(rewritten) if l.strip())
rj = set(l.split("\t")[0] for l in open(rejected) if l.strip())
for l in open(pats):
    p = l.rstrip("\n")
    if p and p not in rj:
        print(rw.get(p, p))
PY
        np=$(grep -c '' "$OUT/patterns.$t" || true)
        if ((np == 0)); then
            record "  rg -j1 ($t patterns)" "$b" "$l" "-" "-" "$name: no $t patterns"
        else
            measure "rg-j1-$t" '0|1' "$OUT/rg-j1-$t.out" rg -j1 -c -f "$OUT/patterns.$t" "$f"
            record "  rg -j1 ($t patterns)" "$b" "$l" "$M_SECS" "$M_RSS" "$name: $np patterns"
        fi
        measure "rg-j1-all-$name" '0|1' "$OUT/rg-j1-all-$name.out" rg -j1 -c -f "$PATTERNS" "$f"
        record "  rg -j1 (all patterns)" "$b" "$l" "$M_SECS" "$M_RSS" "$name: $n_pat patterns"
    done
fi

# ---------------------------------------------------------------- report
export RESULTS CORPUS OUT REJECTED REWRITTEN n_all n_pat RUNS F2B_PROC F2B_N F2B_BYTES
export CANHGAC_SUMMARY F2B_SUMMARY PER_FILE
export V_CANHGAC="$("$BIN" --version 2>&1 | head -n 1)"
export V_RG="$(rg --version | head -n 1)"
export V_F2B="$(fail2ban-regex --version 2>&1 | head -n 1)"
export V_RUSTC="$(rustc --version 2>/dev/null || echo '?')"
export V_PY="$(python3 --version 2>&1)"
export CPU="$(grep -m 1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*: //' || echo '?')"
export NCPU="$(nproc)"
export KERNEL="$(uname -sr)"
export GIT_REV="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
export GIT_DIRTY="$(cd "$ROOT" && git status --porcelain 2>/dev/null | wc -l)"

python3 - <<'PY'
import json, os

env = os.environ
rows = []
with open(env["RESULTS"]) as f:
    for line in f:
        tool, b, l, s, rss, note = line.rstrip("\n").split("\t")
        rows.append((tool, b, l, s, rss, note))

def num(x):
    return None if x == "-" else float(x)

print()
print("== canhgac throughput benchmark")
print(f"canhgac:   {env['V_CANHGAC']} (git {env['GIT_REV']}, {env['GIT_DIRTY']} uncommitted paths), {env['V_RUSTC']}")
print(f"ripgrep:   {env['V_RG']}")
print(f"fail2ban:  {env['V_F2B']} ({env['V_PY']})")
print(f"CPU:       {env['CPU']}, {env['NCPU']} CPUs online; {env['KERNEL']}")
m = json.load(open(os.path.join(env["CORPUS"], "corpus.json")))
tb = m["total_bytes"]
print(f"corpus:    {env['CORPUS']}: {tb:,} bytes, {m['total_lines']:,} lines, "
      f"{m['reps']} repetitions of ../shared/corpus (times shifted 1 day per repetition from "
      f"{m['start']}, last IPv4 octet +1 per repetition)")
for name, info in m["files"].items():
    print(f"  {name:<11} {info['bytes']:>13,} bytes {100 * info['bytes'] / tb:5.1f}%  "
          f"{info['lines']:>10,} lines  from {' + '.join(info['sources'])}")
print(f"patterns:  {env['n_pat']} of {env['n_all']} from `canhgac rules patterns` (the full default rule set)")
if os.path.getsize(env["REWRITTEN"]):
    print(f"  rg ({env['V_RG']}) rejects these patterns as written; they run in rg with the backslash")
    print("  dropped from escaped non-metacharacters (same regex), e.g. \\\" -> \":")
    for l in open(env["REWRITTEN"]):
        p, err, _ = l.rstrip("\n").split("\t", 2)
        print(f"    [{err.strip()}] {p[:160]}{'...' if len(p) > 160 else ''}")
if os.path.getsize(env["REJECTED"]):
    print("  rg REJECTS these patterns (left out of every rg run):")
    for l in open(env["REJECTED"]):
        p, err = l.rstrip("\n").split("\t", 1)
        print(f"    {p}\n      -> {err}")
print(f"runs:      best of {env['RUNS']} for canhgac and rg (page cache warm); wall time measured "
      f"around /usr/bin/time, peak RSS = its %M (max over runs)")
print()

hdr = ("tool", "bytes", "lines", "seconds", "MB/s", "lines/s", "peak RSS MB")
fmt = "{:<32} {:>13} {:>11} {:>9} {:>9} {:>12} {:>12}  {}"
print(fmt.format(*hdr, "notes"))
print(fmt.format(*["-" * len(h) for h in hdr], "-----"))
res = {}
for tool, b, l, s, rss, note in rows:
    b, l, s, rss = int(b), int(l), num(s), num(rss)
    if s is None:
        print(fmt.format(tool, f"{b:,}", f"{l:,}", "-", "-", "-", "-", note))
        continue
    mbs, lps = b / 1e6 / s, l / s
    res[tool] = (b, l, s, mbs, lps)
    print(fmt.format(tool, f"{b:,}", f"{l:,}", f"{s:.3f}", f"{mbs:.1f}", f"{lps:,.0f}",
                     f"{rss / 1024:.1f}", note))
    if tool == "fail2ban-regex" and env.get("F2B_PROC"):
        p = float(env["F2B_PROC"])
        res["fail2ban-regex (own timer)"] = (b, l, p, b / 1e6 / p, l / p)
        print(fmt.format("  (its own timer)", "", "", f"{p:.3f}", f"{b / 1e6 / p:.1f}",
                         f"{l / p:,.0f}", "", "fail2ban's `processed in`: excludes start-up and reading the filter"))
print()
if env.get("CANHGAC_SUMMARY"):
    print("canhgac says:  " + env["CANHGAC_SUMMARY"] + "  (last run)")
if env.get("F2B_SUMMARY"):
    print("fail2ban says: " + env["F2B_SUMMARY"])

def total(path):
    n = 0
    for l in open(path):
        l = l.strip()
        if l:
            n += int(l.rsplit(":", 1)[-1])
    return n
rg_lines = total(os.path.join(env["OUT"], "rg-j1.out"))
print(f"rg -c:         {rg_lines:,} matching lines in all files (canhgac counts events: one per rule that matches a line)")
print()

c = res["canhgac scan"]
r1 = res["rg -j1 -c -f"]
rn = res["rg -c -f"]
f_wall = res["fail2ban-regex"]
f_own = res.get("fail2ban-regex (own timer)", f_wall)
ratio_j1 = c[3] / r1[3]
ratio_n = c[3] / rn[3]
ratio_f_wall = c[4] / f_wall[4]
ratio_f_own = c[4] / f_own[4]
cp = res["canhgac, fail2ban's lines"]
ratio_same = cp[4] / f_wall[4]
ratio_same_own = cp[4] / f_own[4]
print("ratios (throughput; > 1 means canhgac is faster):")
print(f"  canhgac / rg -j1            {ratio_j1:6.2f} x   (headline: canhgac scan is single-threaded, so is rg -j1)")
print(f"  canhgac / rg (threads)      {ratio_n:6.2f} x   (rg may use {env['NCPU']} CPUs over the 3 files)")
print(f"  canhgac / fail2ban-regex    {ratio_f_own:6.1f} x   lines/s, against fail2ban's own processing time (headline, kinder to fail2ban)")
print(f"                              {ratio_f_wall:6.1f} x   lines/s, against fail2ban-regex's wall time")
print(f"  same auth lines (canhgac on fail2ban's prefix):")
print(f"                              {ratio_same_own:6.1f} x   against fail2ban's own processing time")
print(f"                              {ratio_same:6.1f} x   wall against wall")
print()
print(f"bar: canhgac >= 0.5 x rg:             {ratio_j1:.2f} x rg -j1             {'PASS' if ratio_j1 >= 0.5 else 'FAIL'}")
print(f"bar: canhgac >= 50 x fail2ban-regex:  {ratio_f_own:.1f} x fail2ban-regex   {'PASS' if ratio_f_own >= 50 else 'FAIL'}")
PY
note "raw results and tool outputs in $OUT"
