#!/usr/bin/env bash
# Checks the systemd integration files of canhgac. Called by CI; installs
# nothing on the system.
#
#   systemd/check.sh [--bin PATH] [--max-exposure N.N]
#
# 1. `systemd-analyze verify` on systemd/canhgac.service and
#    systemd/canhgac-syslog.socket must print nothing.
#    verify insists that every Exec*= binary exists. Rather than requiring
#    /usr/bin/canhgac on the machine, the script builds a throwaway root in a
#    temporary directory holding this system's unit files (for sysinit.target
#    and the other default dependencies), our unit as
#    usr/lib/systemd/system/canhgac.service, the binary given by --bin as
#    usr/bin/canhgac and a copy of /bin/kill (ExecReload=), and runs
#    `systemd-analyze verify --root=<tmp>`.
#    --bin defaults to /usr/bin/canhgac when it exists, else
#    target/release/canhgac, else target/debug/canhgac.
# 2. `systemd-analyze security --offline=true --threshold=20` must rate the
#    unit's overall exposure at 2.0 or lower (the threshold is in tenths; the
#    script also parses the "Overall exposure level" line and compares it
#    itself). The exposure is printed either way.
# 3. systemd/canhgac.sysusers and systemd/canhgac.tmpfiles are applied inside
#    the throwaway root (systemd-sysusers --root, systemd-tmpfiles --root
#    --create) and must succeed without warnings; the tmpfiles step needs root
#    and is skipped otherwise.
#
# Needs systemd >= 250 (`--offline`, `--threshold`): Debian 12, Ubuntu 24.04
# or newer, package `systemd` (it provides systemd-analyze, systemd-sysusers
# and systemd-tmpfiles), plus `procps` for /bin/kill. No running systemd is
# needed: it works in containers and CI.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
unit="$here/canhgac.service"
sysusers="$here/canhgac.sysusers"
tmpfiles="$here/canhgac.tmpfiles"
max_exposure="2.0"
bin=""

usage() { sed -n '2,30s/^# \{0,1\}//p' "$0"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="${2:?--bin needs a path}"; shift 2 ;;
        --bin=*) bin="${1#--bin=}"; shift ;;
        --max-exposure) max_exposure="${2:?--max-exposure needs a number}"; shift 2 ;;
        --max-exposure=*) max_exposure="${1#--max-exposure=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "check.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ -z "$bin" ]; then
    for candidate in /usr/bin/canhgac "$repo/target/release/canhgac" "$repo/target/debug/canhgac"; do
        if [ -x "$candidate" ]; then bin="$candidate"; break; fi
    done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "check.sh: no canhgac binary (${bin:-none found}); build one (cargo build --release) or pass --bin PATH" >&2
    exit 2
fi

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check.sh: $tool not found: apt-get install -y systemd" >&2
        exit 2
    fi
done
if [ ! -x /bin/kill ]; then
    echo "check.sh: /bin/kill not found (ExecReload= uses it): apt-get install -y procps" >&2
    exit 2
fi

failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"

# ---- 1. verify -------------------------------------------------------------
mkdir -p "$root/usr/lib/systemd" "$root/usr/bin" "$root/bin" "$root/etc"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/system"
# Systems without merged /usr keep units in /lib/systemd/system too.
if [ -d /lib/systemd/system ] && [ ! /lib/systemd/system -ef /usr/lib/systemd/system ]; then
    mkdir -p "$root/lib/systemd"
    cp -a /lib/systemd/system "$root/lib/systemd/system"
fi
install -m 0644 "$unit" "$root/usr/lib/systemd/system/canhgac.service"
install -m 0644 "$here/canhgac-syslog.socket" "$root/usr/lib/systemd/system/canhgac-syslog.socket"
install -m 0755 "$bin" "$root/usr/bin/canhgac"
cp -L /bin/kill "$root/bin/kill"

echo "== systemd-analyze verify (binary: $bin) =="
verify_out="$tmp/verify.out"
set +e
systemd-analyze verify --root="$root" canhgac.service canhgac-syslog.socket >"$verify_out" 2>&1
verify_rc=$?
set -e
if [ -s "$verify_out" ]; then cat "$verify_out"; fi
if [ "$verify_rc" -ne 0 ]; then
    fail "systemd-analyze verify exited $verify_rc"
elif [ -s "$verify_out" ]; then
    fail "systemd-analyze verify printed warnings"
else
    echo "verify: clean"
fi

# ---- 2. security -----------------------------------------------------------
echo "== systemd-analyze security --offline=true =="
threshold="$(awk -v m="$max_exposure" 'BEGIN { printf "%d", m * 10 + 0.5 }')"
security_out="$tmp/security.out"
set +e
systemd-analyze security --offline=true --threshold="$threshold" --no-pager "$unit" >"$security_out" 2>&1
security_rc=$?
set -e
# Show what costs exposure (the lines with a score), then the verdict.
grep -E '^✗' "$security_out" || true
overall="$(grep -E 'Overall exposure level' "$security_out" || true)"
if [ -z "$overall" ]; then
    cat "$security_out"
    fail "no 'Overall exposure level' line from systemd-analyze security (systemd >= 250 needed)"
else
    echo "$overall"
    exposure="$(echo "$overall" | sed -E 's/.*: ([0-9]+(\.[0-9]+)?).*/\1/')"
    echo "exposure: $exposure (maximum allowed: $max_exposure)"
    if ! awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e + 0 <= m + 0) }'; then
        fail "exposure $exposure is above $max_exposure"
    fi
    if [ "$security_rc" -ne 0 ]; then
        fail "systemd-analyze security --threshold=$threshold exited $security_rc"
    fi
fi

# ---- 3. sysusers and tmpfiles ----------------------------------------------
echo "== sysusers.d and tmpfiles.d =="
for f in passwd group shadow gshadow; do
    if [ -r "/etc/$f" ]; then cp "/etc/$f" "$root/etc/$f"; else : >"$root/etc/$f"; fi
done
# Start from a system without a canhgac user, whatever this machine has.
for f in passwd group shadow gshadow; do
    sed -i '/^canhgac:/d' "$root/etc/$f"
done
sysusers_out="$tmp/sysusers.out"
if systemd-sysusers --root="$root" "$sysusers" >"$sysusers_out" 2>&1; then
    cat "$sysusers_out"
    if grep -qiE 'warn|ignor|fail|invalid' "$sysusers_out"; then
        fail "systemd-sysusers warned"
    fi
    if ! grep -q '^canhgac:' "$root/etc/passwd"; then
        fail "systemd-sysusers created no canhgac user"
    fi
    if ! grep -qE '^adm:[^:]*:[^:]*:(.*,)?canhgac(,|$)' "$root/etc/group"; then
        fail "canhgac is not a member of adm"
    fi
    if ! grep -qE '^systemd-journal:[^:]*:[^:]*:(.*,)?canhgac(,|$)' "$root/etc/group"; then
        fail "canhgac is not a member of systemd-journal"
    fi
else
    cat "$sysusers_out"
    fail "systemd-sysusers failed"
fi

if [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$root/etc/canhgac"
    : >"$root/etc/canhgac/canhgac.toml"
    tmpfiles_out="$tmp/tmpfiles.out"
    if systemd-tmpfiles --root="$root" --create "$tmpfiles" >"$tmpfiles_out" 2>&1 && [ ! -s "$tmpfiles_out" ]; then
        uid="$(awk -F: '$1 == "canhgac" { print $3 }' "$root/etc/passwd")"
        gid="$(awk -F: '$1 == "canhgac" { print $3 }' "$root/etc/group")"
        got_state="$(stat -c '%a %u %g' "$root/var/lib/canhgac")"
        got_conf="$(stat -c '%a %u %g' "$root/etc/canhgac/canhgac.toml")"
        [ "$got_state" = "750 $uid $gid" ] || fail "/var/lib/canhgac is '$got_state', want '750 $uid $gid'"
        [ "$got_conf" = "640 0 $gid" ] || fail "/etc/canhgac/canhgac.toml is '$got_conf', want '640 0 $gid'"
        [ -d "$root/etc/canhgac/rules.d" ] || fail "/etc/canhgac/rules.d was not created"
        echo "tmpfiles: /var/lib/canhgac $got_state, /etc/canhgac/canhgac.toml $got_conf, /etc/canhgac/rules.d present"
    else
        cat "$tmpfiles_out"
        fail "systemd-tmpfiles --create failed or warned"
    fi
else
    echo "tmpfiles: skipped (needs root to chown)"
fi

if [ "$failed" -ne 0 ]; then
    echo "systemd check: FAILED" >&2
    exit 1
fi
echo "systemd check: OK (exposure $exposure)"
