#!/usr/bin/env bash
# Detection benchmark: canhgac scan vs fail2ban (Debian's filters, jail simulated) on a labelled
# synthetic corpus (auth, web, ftp, mail logs), attacker-level recall and precision per category;
# then both on the real logs of ../shared/corpus. See benches/detection/README.md.
#
#   benches/detection/run.sh [--bin PATH] [--seed N] [--days N] [--sshd-session-from DAY]
#                            [--work DIR] [--no-fail2ban]
#
#   --bin PATH        canhgac binary (default: target/release/canhgac, else target/debug/canhgac)
#   --seed N          corpus seed (default 1); the same seed gives the same corpus
#   --days N          corpus time span in days (default 3)
#   --sshd-session-from DAY   day at which auth.log's sshd starts logging as sshd-session
#                     (OpenSSH 9.8+); default 2/3 of the span; 99 keeps it sshd throughout
#   --work DIR        where corpus and results go (default ${TMPDIR:-/tmp}/canhgac-detection)
#   --no-fail2ban     canhgac only
#
# Never builds anything. Installs fail2ban with apt-get when fail2ban-regex is missing (as root
# or via sudo); if that fails, the fail2ban rows are skipped with a message. Exits 0 whatever the
# figures are (a measurement, not a test); non-zero when canhgac cannot run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=
SEED=1
DAYS=3
SESSION_FROM=
WORK=${TMPDIR:-/tmp}/canhgac-detection
F2B=1
CORPUS_SRC=${CORPUS_SRC:-$ROOT/../shared/corpus}

die() { echo "detection/run.sh: error: $*" >&2; exit 1; }
note() { echo "detection/run.sh: $*" >&2; }

while (($#)); do
    case $1 in
        --bin) BIN=${2:?--bin needs a path}; shift 2 ;;
        --seed) SEED=${2:?--seed needs a number}; shift 2 ;;
        --days) DAYS=${2:?--days needs a number}; shift 2 ;;
        --sshd-session-from) SESSION_FROM=${2:?--sshd-session-from needs a day}; shift 2 ;;
        --work) WORK=${2:?--work needs a directory}; shift 2 ;;
        --no-fail2ban) F2B=0; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer"

if [[ -z $BIN ]]; then
    for b in "$ROOT/target/release/canhgac" "$ROOT/target/debug/canhgac"; do
        if [[ -x $b ]]; then BIN=$b; break; fi
    done
    [[ -n $BIN ]] || die "no canhgac binary in $ROOT/target/{release,debug}: build it (cargo build --release) or pass --bin"
fi
[[ -x $BIN ]] || die "$BIN is not an executable"
command -v python3 >/dev/null 2>&1 || die "python3 is required"

# ---------------------------------------------------------------- fail2ban
if [[ $F2B == 1 ]] && ! command -v fail2ban-regex >/dev/null 2>&1; then
    note "fail2ban-regex not found: installing fail2ban with apt-get"
    sudo=()
    if [[ $(id -u) != 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else sudo=(false); fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends fail2ban; } >&2; then
        note "WARNING: could not install fail2ban (needs apt-get and root or passwordless sudo): fail2ban rows skipped"
    fi
fi
if [[ $F2B == 1 ]] && ! command -v fail2ban-regex >/dev/null 2>&1; then
    note "WARNING: fail2ban-regex unavailable: the fail2ban rows are skipped"
    F2B=0
fi
if [[ $F2B == 1 && ! -f /etc/fail2ban/filter.d/sshd.conf ]]; then
    note "WARNING: /etc/fail2ban/filter.d/sshd.conf not found: the fail2ban rows are skipped"
    F2B=0
fi

# ---------------------------------------------------------------- corpus and scoring
export TZ=UTC
mkdir -p "$WORK"
CORPUS=$WORK/corpus
rm -rf "$CORPUS"
gen=(python3 "$HERE/gen_corpus.py" --out "$CORPUS" --seed "$SEED" --days "$DAYS")
[[ -n $SESSION_FROM ]] && gen+=(--sshd-session-from "$SESSION_FROM")
"${gen[@]}" > "$WORK/gen.out" || die "gen_corpus.py failed"

real=()
for f in openssh_2k.log linux_syslog_2k.log; do
    if [[ -f $CORPUS_SRC/$f ]]; then real+=("$CORPUS_SRC/$f"); else note "WARNING: $CORPUS_SRC/$f not found, skipped"; fi
done
score=(python3 "$HERE/score.py" --bin "$BIN" --corpus "$CORPUS" --details "$WORK/details.txt" --json "$WORK/results.json")
((${#real[@]})) && score+=(--real "${real[@]}")
[[ $F2B == 1 ]] || score+=(--no-fail2ban)
"${score[@]}" | tee "$WORK/report.txt"
echo "corpus, labels and report in $WORK; false positives and misses, source by source: $WORK/details.txt"
