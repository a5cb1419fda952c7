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
# 2. The IP filters, as systemd itself loads them: `systemd --test --system
#    --unit=canhgac-syslog.socket` (run as nobody: test mode refuses root)
#    loads the units from the throwaway root only (SYSTEMD_UNIT_PATH without a
#    trailing colon: no drop-in of this machine counts) and dumps their
#    effective settings. canhgac-syslog.socket and canhgac.service must each
#    have exactly IPAddressDeny=any (0.0.0.0/0 ::/0) and
#    IPAddressAllow=localhost (127.0.0.0/8 ::1/128): the service's filter does
#    not cover the sockets passed in by socket activation, so the socket needs
#    its own (systemd.resource-control(5)). Two more loads check the check:
#    the relay drop-in that docs/install.md prescribes
#    (`[Socket] IPAddressAllow=192.0.2.0/24`) must add 192.0.2.0/24 and keep
#    the deny list, and a drop-in emptying both lists (the socket unit before
#    issue 17: port 514 open to all) must be caught. If `systemd --test`
#    cannot run here, the script falls back to reading the IPAddress lines of
#    the [Socket] section of the file (drop-ins not applied) and says so.
# 3. `systemd-analyze security --offline=true --threshold=20` must rate each
#    unit's (canhgac.service, canhgac-center.service) overall exposure at 2.0 or lower (the threshold is in tenths; the
#    script also parses the "Overall exposure level" line and compares it
#    itself). The exposure is printed either way.
# 4. systemd/canhgac.sysusers and systemd/canhgac.tmpfiles are applied inside
#    the throwaway root (systemd-sysusers --root, systemd-tmpfiles --root
#    --create) and must succeed without warnings; the tmpfiles step needs root
#    and is skipped otherwise.
#
# Needs systemd >= 250 (`--offline`, `--threshold`): Debian 12, Ubuntu 24.04
# or newer, package `systemd` (it provides systemd-analyze, systemd-sysusers,
# systemd-tmpfiles and /usr/lib/systemd/systemd), plus `procps` for /bin/kill
# and, as root, setpriv (util-linux). No running systemd is needed: it works
# in containers and CI.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
unit="$here/canhgac.service"
sysusers="$here/canhgac.sysusers"
tmpfiles="$here/canhgac.tmpfiles"
max_exposure="2.0"
bin=""

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

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
fail() { printf '%s\n' "$*" | sed 's/^/FAIL: /' >&2; failed=1; }

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
install -m 0644 "$here/canhgac-center.service" "$root/usr/lib/systemd/system/canhgac-center.service"
install -m 0755 "$bin" "$root/usr/bin/canhgac"
cp -L /bin/kill "$root/bin/kill"

echo "== systemd-analyze verify (binary: $bin) =="
verify_out="$tmp/verify.out"
set +e
systemd-analyze verify --root="$root" canhgac.service canhgac-syslog.socket canhgac-center.service >"$verify_out" 2>&1
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

# ---- 2. IP filters, as systemd loads them ---------------------------------
echo "== IP filters (systemd --test) =="
loopback="127.0.0.0/8 ::1/128"
any="0.0.0.0/0 ::/0"
systemd_bin=""
for candidate in /usr/lib/systemd/systemd /lib/systemd/systemd; do
    if [ -x "$candidate" ]; then systemd_bin="$candidate"; break; fi
done
unit_path="$root/usr/lib/systemd/system"
if [ -d "$root/lib/systemd/system" ]; then unit_path="$unit_path:$root/lib/systemd/system"; fi
# Test mode refuses to run as root: as root, load the units as nobody, who
# needs to reach them (the rest of $tmp stays unlistable).
as_user=()
if [ "$(id -u)" -eq 0 ]; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    chmod 0711 "$tmp"
    chmod 0755 "$root" "$root/usr" "$root/usr/lib" "$root/usr/lib/systemd"
    if [ -d "$root/lib/systemd" ]; then chmod 0755 "$root/lib" "$root/lib/systemd"; fi
fi

# load_units OUT [DROPIN]: dump the units as systemd loads them, with the
# drop-in file DROPIN (if given) as canhgac-syslog.socket.d/check.conf.
load_units() {
    local out="$1" dropin="${2:-}" path="$unit_path"
    if [ -n "$dropin" ]; then
        local dir="$out.units"
        mkdir -m 0755 -p "$dir/canhgac-syslog.socket.d"
        install -m 0644 "$dropin" "$dir/canhgac-syslog.socket.d/check.conf"
        path="$dir:$path"
    fi
    (cd / && env -i PATH="$PATH" HOME=/ SYSTEMD_UNIT_PATH="$path" ${as_user[@]+"${as_user[@]}"} \
        "$systemd_bin" --test --system --unit=canhgac-syslog.socket --no-pager \
        --log-target=console --log-level=warning) >"$out" 2>"$out.err"
}
# dumped DUMP UNIT KEY: the values of "KEY: value" lines in UNIT's section of
# the dump, sorted, on one line.
dumped() {
    awk -v unit="$2:" -v key="$3:" '
        $1 == "->" && $2 == "Unit" { in_unit = ($3 == unit); next }
        in_unit { sub(/^[ \t]+/, ""); if (index($0, key " ") == 1) print substr($0, length(key) + 2) }' "$1" |
        LC_ALL=C sort | paste -sd ' ' -
}
# filter_problems DUMP UNIT ALLOW: what is wrong with UNIT's IP filter, if
# anything (want: deny any, allow exactly ALLOW).
filter_problems() {
    local state allow deny
    state="$(dumped "$1" "$2" "Unit Load State")"
    allow="$(dumped "$1" "$2" IPAddressAllow)"
    deny="$(dumped "$1" "$2" IPAddressDeny)"
    if [ "$state" != "loaded" ]; then
        echo "$2: load state '${state:-none}', not loaded"
        return
    fi
    [ "$deny" = "$any" ] || echo "$2: IPAddressDeny is '${deny:-empty}', want '$any' (any)"
    [ "$allow" = "$3" ] || echo "$2: IPAddressAllow is '${allow:-empty}', want '$3'"
}

dump="$tmp/test-mode.out"
if [ -n "$systemd_bin" ] && load_units "$dump" && grep -q -- '-> Unit canhgac-syslog.socket:' "$dump"; then
    for u in canhgac-syslog.socket canhgac.service; do
        problems="$(filter_problems "$dump" "$u" "$loopback")"
        if [ -n "$problems" ]; then
            fail "$problems"
        else
            echo "$u: IPAddressDeny=$(dumped "$dump" "$u" IPAddressDeny), IPAddressAllow=$(dumped "$dump" "$u" IPAddressAllow)"
        fi
    done

    # The relay drop-in of docs/install.md adds to the allow list.
    printf '[Socket]\nIPAddressAllow=192.0.2.0/24\n' >"$tmp/relays.conf"
    relays_dump="$tmp/test-mode-relays.out"
    if load_units "$relays_dump" "$tmp/relays.conf"; then
        problems="$(filter_problems "$relays_dump" canhgac-syslog.socket "127.0.0.0/8 192.0.2.0/24 ::1/128")"
        if [ -n "$problems" ]; then
            fail "with the documented relay drop-in: $problems"
        else
            echo "with a relay drop-in (IPAddressAllow=192.0.2.0/24): IPAddressAllow=$(dumped "$relays_dump" canhgac-syslog.socket IPAddressAllow), deny unchanged"
        fi
    else
        cat "$relays_dump.err" >&2
        fail "systemd --test failed with the relay drop-in"
    fi

    # Negative control: a socket without a filter must not pass.
    printf '[Socket]\nIPAddressDeny=\nIPAddressAllow=\n' >"$tmp/open.conf"
    open_dump="$tmp/test-mode-open.out"
    if load_units "$open_dump" "$tmp/open.conf"; then
        if [ -n "$(filter_problems "$open_dump" canhgac-syslog.socket "$loopback")" ]; then
            echo "negative control: a socket without IPAddressDeny=/IPAddressAllow= is caught"
        else
            fail "negative control: the check passed a socket unit whose IP filter a drop-in emptied"
        fi
    else
        cat "$open_dump.err" >&2
        fail "systemd --test failed with the negative-control drop-in"
    fi
else
    # Fallback, for a machine where systemd's test mode cannot load units:
    # the [Socket] section's own lines, without drop-ins or systemd's parsing.
    if [ -s "$dump.err" ]; then cat "$dump.err"; fi
    echo "IP filters: systemd --test unavailable (${systemd_bin:-no systemd binary}); FALLBACK: reading the unit file's text, drop-ins not applied"
    section_values() {
        awk -v key="$1" '
            /^\[/ { in_socket = ($0 == "[Socket]"); next }
            in_socket && $0 ~ "^" key "=" { sub(/^[^=]*=/, ""); print }' "$here/canhgac-syslog.socket" | paste -sd ' ' -
    }
    deny="$(section_values IPAddressDeny)"
    allow="$(section_values IPAddressAllow)"
    [ "$deny" = "any" ] || fail "canhgac-syslog.socket: IPAddressDeny= is '${deny:-missing}', want 'any'"
    [ "$allow" = "localhost" ] || fail "canhgac-syslog.socket: IPAddressAllow= is '${allow:-missing}', want 'localhost'"
    echo "canhgac-syslog.socket (file text): IPAddressDeny=$deny, IPAddressAllow=$allow"
fi

# ---- 3. security -----------------------------------------------------------
# security UNIT: the exposure of one unit file, at most $max_exposure.
security() {
    echo "== systemd-analyze security --offline=true $(basename "$1") =="
    threshold="$(awk -v m="$max_exposure" 'BEGIN { printf "%d", m * 10 + 0.5 }')"
    security_out="$tmp/security.out"
    set +e
    systemd-analyze security --offline=true --threshold="$threshold" --no-pager "$1" >"$security_out" 2>&1
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
}
security "$unit"
security "$here/canhgac-center.service"

# ---- 4. sysusers and tmpfiles ----------------------------------------------
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
